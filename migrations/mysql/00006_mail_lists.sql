-- Mailing lists drawn from the org chart: an org unit (with or without
-- its sub-units) or an OA group can have one list address. Members are
-- not stored: they are read from the directory when mail arrives, so a
-- person who moves is on the right lists at once. An address is unique
-- across accounts, aliases and lists together; the store checks the
-- three, this table's key holds its own part.

-- +goose Up
CREATE TABLE mail_lists (
    address          VARCHAR(320) NOT NULL,
    owner_kind       VARCHAR(16)  NOT NULL,
    owner_id         CHAR(36)     NOT NULL,
    include_subunits BOOLEAN      NOT NULL DEFAULT FALSE,
    posting          VARCHAR(16)  NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (address),
    UNIQUE KEY uq_mail_lists_owner (owner_kind, owner_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE mail_lists;
