-- The cursors of the change log's consumers: the last row each one has
-- applied. The LDAP mirror keeps "ldap" here.

-- +goose Up
CREATE TABLE mirror_cursors (
    name       VARCHAR(64) NOT NULL,
    seq        BIGINT      NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE mirror_cursors;
