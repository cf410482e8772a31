-- The account lifecycle (SQLite form; the MySQL file of the same number
-- is the reference): a person's job title, a mailbox quota, deletion with
-- a retention period before the account is purged, and aliases.

-- +goose Up
ALTER TABLE people ADD COLUMN title TEXT NOT NULL DEFAULT '';

ALTER TABLE accounts ADD COLUMN quota_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN deleted_at DATETIME NULL;
ALTER TABLE accounts ADD COLUMN purge_after DATETIME NULL;
CREATE INDEX ix_accounts_purge ON accounts (status, purge_after);

CREATE TABLE aliases (
    address             TEXT     NOT NULL,
    account_id          TEXT     NOT NULL,
    created_at          DATETIME NOT NULL,
    PRIMARY KEY (address),
    CONSTRAINT fk_aliases_account FOREIGN KEY (account_id) REFERENCES accounts (id)
);
CREATE INDEX ix_aliases_account ON aliases (account_id);

-- +goose Down
DROP TABLE aliases;
DROP INDEX ix_accounts_purge;
ALTER TABLE accounts DROP COLUMN purge_after;
ALTER TABLE accounts DROP COLUMN deleted_at;
ALTER TABLE accounts DROP COLUMN quota_bytes;
ALTER TABLE people DROP COLUMN title;
