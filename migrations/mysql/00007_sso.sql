-- Single sign-on and web sessions: what must hold across processes and
-- restarts. Secrets a browser holds (login tokens, session ids) are
-- stored only as SHA-256 digests; preauth keys are stored as they are,
-- since the MAC must be computed again. Instants are Unix milliseconds
-- (UTC) so that both databases compare them the same way.

-- +goose Up
CREATE TABLE sso_tokens (
    token_hash  CHAR(64)      NOT NULL,
    account_id  CHAR(36)      NOT NULL,
    return_path VARCHAR(512)  NOT NULL,
    created_at  BIGINT        NOT NULL,
    expires_at  BIGINT        NOT NULL,
    used_at     BIGINT        NULL,
    PRIMARY KEY (token_hash),
    KEY ix_sso_tokens_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE sso_keys (
    domain     VARCHAR(255) NOT NULL,
    key_id     VARCHAR(32)  NOT NULL,
    secret     VARCHAR(128) NOT NULL,
    created_at BIGINT       NOT NULL,
    retired_at BIGINT       NULL,
    PRIMARY KEY (domain, key_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE sso_used_links (
    mac_hash   CHAR(64) NOT NULL,
    account_id CHAR(36) NOT NULL,
    expires_at BIGINT   NOT NULL,
    PRIMARY KEY (mac_hash),
    KEY ix_sso_used_links_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE web_sessions (
    id_hash    CHAR(64) NOT NULL,
    account_id CHAR(36) NOT NULL,
    created_at BIGINT   NOT NULL,
    expires_at BIGINT   NOT NULL,
    PRIMARY KEY (id_hash),
    KEY ix_web_sessions_account (account_id),
    KEY ix_web_sessions_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE login_lockouts (
    subject      VARCHAR(400) NOT NULL,
    account_id   CHAR(36)     NULL,
    failures     INT          NOT NULL,
    locked_until BIGINT       NOT NULL,
    created_at   BIGINT       NOT NULL,
    PRIMARY KEY (subject),
    KEY ix_login_lockouts_until (locked_until)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE login_lockouts;
DROP TABLE web_sessions;
DROP TABLE sso_used_links;
DROP TABLE sso_keys;
DROP TABLE sso_tokens;
