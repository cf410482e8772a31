-- The change log doubles as the audit trail: who made each change, and
-- the record as it was before it.

-- +goose Up
ALTER TABLE change_log ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE change_log ADD COLUMN before_data TEXT NULL;
CREATE INDEX ix_change_log_at ON change_log (at);

-- +goose Down
DROP INDEX ix_change_log_at;
ALTER TABLE change_log DROP COLUMN before_data;
ALTER TABLE change_log DROP COLUMN actor;
