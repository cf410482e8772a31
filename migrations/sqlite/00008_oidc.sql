-- OpenID Connect provider state (SQLite form; the MySQL file of the same
-- number is the reference): registered relying parties and token
-- signing keys.

-- +goose Up
CREATE TABLE oidc_clients (
    id                   TEXT     NOT NULL,
    name                 TEXT     NOT NULL,
    secret_hash          TEXT     NOT NULL DEFAULT '',
    redirect_uris        TEXT     NOT NULL,
    post_logout_uris     TEXT     NOT NULL,
    created_at           DATETIME NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE oidc_keys (
    id          TEXT     NOT NULL,
    algorithm   TEXT     NOT NULL,
    private_pem TEXT     NOT NULL,
    created_at  DATETIME NOT NULL,
    retired_at  DATETIME NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_oidc_keys_retired ON oidc_keys (retired_at);

-- +goose Down
DROP TABLE oidc_keys;
DROP TABLE oidc_clients;
