-- Mailing lists drawn from the org chart (SQLite form; the MySQL file of
-- the same number is the reference): one list address per org unit or
-- OA group, members read from the directory when mail arrives.

-- +goose Up
CREATE TABLE mail_lists (
    address          TEXT     NOT NULL,
    owner_kind       TEXT     NOT NULL,
    owner_id         TEXT     NOT NULL,
    include_subunits BOOLEAN  NOT NULL DEFAULT FALSE,
    posting          TEXT     NOT NULL,
    created_at       DATETIME NOT NULL,
    updated_at       DATETIME NOT NULL,
    PRIMARY KEY (address)
);
CREATE UNIQUE INDEX uq_mail_lists_owner ON mail_lists (owner_kind, owner_id);

-- +goose Down
DROP TABLE mail_lists;
