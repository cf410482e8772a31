-- Which member of a logical back node serves its store (SQLite form;
-- the MySQL file of the same number is the reference). Back nodes run
-- on MySQL only, so the table stays empty here.

-- +goose Up
CREATE TABLE back_leases (
  name       TEXT    NOT NULL PRIMARY KEY,
  holder     TEXT    NOT NULL DEFAULT '',
  fence      INTEGER NOT NULL DEFAULT 0,
  expires_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE back_leases;
