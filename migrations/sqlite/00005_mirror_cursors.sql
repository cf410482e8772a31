-- The cursors of the change log's consumers (SQLite form; the MySQL file
-- of the same number is the reference): the last row each one has
-- applied. The LDAP mirror keeps "ldap" here.

-- +goose Up
CREATE TABLE mirror_cursors (
    name       TEXT     NOT NULL PRIMARY KEY,
    seq        INTEGER  NOT NULL,
    updated_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE mirror_cursors;
