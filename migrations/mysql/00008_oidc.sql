-- OpenID Connect provider state (OpenID Connect Core 1.0): the relying
-- parties registered to sign users in through egret, and the keys that
-- sign ID and access tokens. Authorization requests, codes and browser
-- sessions are short-lived and kept in the serving process's memory.
--
-- A client's secret is kept as its SHA-256 digest only; a public client
-- (a browser or native app, RFC 6749 §2.1) has none and must use PKCE.
-- A signing key stays in the table after it is retired so that tokens it
-- signed verify until the grace period ends; the JWKS lists every key
-- not retired longer ago than that.

-- +goose Up
CREATE TABLE oidc_clients (
    id                   VARCHAR(64)  NOT NULL,
    name                 VARCHAR(128) NOT NULL,
    secret_hash          VARCHAR(64)  NOT NULL DEFAULT '',
    redirect_uris        TEXT         NOT NULL,
    post_logout_uris     TEXT         NOT NULL,
    created_at           DATETIME(6)  NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE oidc_keys (
    id          VARCHAR(64) NOT NULL,
    algorithm   VARCHAR(16) NOT NULL,
    private_pem TEXT        NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    retired_at  DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY ix_oidc_keys_retired (retired_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE oidc_keys;
DROP TABLE oidc_clients;
