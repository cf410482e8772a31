-- The back node that holds an account's mailboxes (SQLite form; the
-- MySQL file of the same number is the reference). NULL means the node
-- is picked from the account's id.

-- +goose Up
ALTER TABLE accounts ADD COLUMN home_node TEXT NULL;

-- +goose Down
ALTER TABLE accounts DROP COLUMN home_node;
