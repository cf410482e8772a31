-- The account lifecycle: a person's job title, a mailbox quota, deletion
-- with a retention period before the account is purged, and aliases,
-- further addresses that deliver to an account. An address is unique
-- across accounts and aliases together; the store checks the pair, each
-- table's key holds its own half.

-- +goose Up
ALTER TABLE people ADD COLUMN title VARCHAR(255) NOT NULL DEFAULT '';

ALTER TABLE accounts
    ADD COLUMN quota_bytes BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN deleted_at  DATETIME(6) NULL,
    ADD COLUMN purge_after DATETIME(6) NULL;
CREATE INDEX ix_accounts_purge ON accounts (status, purge_after);

CREATE TABLE aliases (
    address    VARCHAR(320) NOT NULL,
    account_id CHAR(36)     NOT NULL,
    created_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (address),
    KEY ix_aliases_account (account_id),
    CONSTRAINT fk_aliases_account FOREIGN KEY (account_id) REFERENCES accounts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE aliases;
DROP INDEX ix_accounts_purge ON accounts;
ALTER TABLE accounts DROP COLUMN purge_after, DROP COLUMN deleted_at, DROP COLUMN quota_bytes;
ALTER TABLE people DROP COLUMN title;
