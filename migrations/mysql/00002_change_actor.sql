-- The change log doubles as the audit trail: who made each change, and
-- the record as it was before it.

-- +goose Up
ALTER TABLE change_log
    ADD COLUMN actor       VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN before_data MEDIUMTEXT   NULL;
CREATE INDEX ix_change_log_at ON change_log (at);

-- +goose Down
DROP INDEX ix_change_log_at ON change_log;
ALTER TABLE change_log DROP COLUMN before_data, DROP COLUMN actor;
