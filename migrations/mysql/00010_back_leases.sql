-- Which member of a logical back node serves its store. Two back
-- processes may share one store folder; the one named in holder is the
-- active one until expires_at, by the database's clock. fence grows by
-- one at every acquisition and is written into the store folder, so a
-- former holder that wakes up late finds it has been replaced.

-- +goose Up
CREATE TABLE back_leases (
  name       VARCHAR(64)  NOT NULL PRIMARY KEY,
  holder     VARCHAR(128) NOT NULL DEFAULT '',
  fence      BIGINT       NOT NULL DEFAULT 0,
  expires_at DATETIME(6)  NOT NULL,
  updated_at DATETIME(6)  NOT NULL
);

-- +goose Down
DROP TABLE back_leases;
