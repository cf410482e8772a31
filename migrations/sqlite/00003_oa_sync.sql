-- OA sync: imports held back by the safety valve until an operator
-- approves them, and the cursor of the EKP pull connector.

-- +goose Up
CREATE TABLE oa_plans (
    id                TEXT     NOT NULL PRIMARY KEY,
    created_at        DATETIME NOT NULL,
    -- snapshot, changes or pull
    source            TEXT     NOT NULL,
    actor             TEXT     NOT NULL DEFAULT '',
    -- held, approved, applied or superseded
    status            TEXT     NOT NULL,
    input_digest      TEXT     NOT NULL,
    -- the input as received, decompressed, then gzip-compressed
    input_gz          BLOB     NOT NULL,
    -- the import's report as JSON, with the accounts it disables
    report            TEXT     NOT NULL,
    accounts_disabled INTEGER  NOT NULL DEFAULT 0,
    decided_at        DATETIME NULL,
    decided_by        TEXT     NOT NULL DEFAULT ''
);
CREATE INDEX ix_oa_plans_status ON oa_plans (status, source, created_at);

CREATE TABLE oa_cursors (
    name             TEXT     NOT NULL PRIMARY KEY,
    -- the beginTimeStamp of the next request, in EKP's form
    begin_time_stamp TEXT     NOT NULL,
    updated_at       DATETIME NOT NULL
);

-- +goose Down
DROP TABLE oa_cursors;
DROP TABLE oa_plans;
