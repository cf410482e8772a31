-- Single sign-on and web sessions (SQLite form; the MySQL file of the
-- same number is the reference). Instants are Unix milliseconds.

-- +goose Up
CREATE TABLE sso_tokens (
    token_hash  TEXT    NOT NULL,
    account_id  TEXT    NOT NULL,
    return_path TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER NULL,
    PRIMARY KEY (token_hash)
);
CREATE INDEX ix_sso_tokens_expires ON sso_tokens (expires_at);

CREATE TABLE sso_keys (
    domain     TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER NULL,
    PRIMARY KEY (domain, key_id)
);

CREATE TABLE sso_used_links (
    mac_hash   TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (mac_hash)
);
CREATE INDEX ix_sso_used_links_expires ON sso_used_links (expires_at);

CREATE TABLE web_sessions (
    id_hash    TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (id_hash)
);
CREATE INDEX ix_web_sessions_account ON web_sessions (account_id);
CREATE INDEX ix_web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE login_lockouts (
    subject      TEXT    NOT NULL,
    account_id   TEXT    NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (subject)
);
CREATE INDEX ix_login_lockouts_until ON login_lockouts (locked_until);

-- +goose Down
DROP TABLE login_lockouts;
DROP TABLE web_sessions;
DROP TABLE sso_used_links;
DROP TABLE sso_keys;
DROP TABLE sso_tokens;
