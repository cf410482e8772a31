-- OA sync: imports held back by the safety valve until an operator
-- approves them, and the cursor of the EKP pull connector.

-- +goose Up
CREATE TABLE oa_plans (
    id                CHAR(36)     NOT NULL,
    created_at        DATETIME(6)  NOT NULL,
    -- snapshot, changes or pull
    source            VARCHAR(16)  NOT NULL,
    actor             VARCHAR(255) NOT NULL DEFAULT '',
    -- held, approved, applied or superseded
    status            VARCHAR(16)  NOT NULL,
    input_digest      CHAR(64)     NOT NULL,
    -- the input as received, decompressed, then gzip-compressed
    input_gz          LONGBLOB     NOT NULL,
    -- the import's report as JSON, with the accounts it disables
    report            LONGTEXT     NOT NULL,
    accounts_disabled INT          NOT NULL DEFAULT 0,
    decided_at        DATETIME(6)  NULL,
    decided_by        VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    KEY ix_oa_plans_status (status, source, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE oa_cursors (
    name             VARCHAR(64) NOT NULL,
    -- the beginTimeStamp of the next request, in EKP's form
    begin_time_stamp VARCHAR(23) NOT NULL,
    updated_at       DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE oa_cursors;
DROP TABLE oa_plans;
