-- The store folder each back serves (SQLite form; the MySQL file of the
-- same number is the reference). Back nodes run on MySQL only, so the
-- table stays empty here.

-- +goose Up
ALTER TABLE back_leases ADD COLUMN store_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE back_leases DROP COLUMN store_id;
