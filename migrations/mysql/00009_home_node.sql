-- The back node that holds an account's mailboxes. NULL means the node
-- is picked from the account's id (a stable hash over the configured
-- back nodes), which for a cluster with one back is that back; a set
-- value wins, so an account can be moved and stay put.

-- +goose Up
ALTER TABLE accounts ADD COLUMN home_node VARCHAR(64) NULL;

-- +goose Down
ALTER TABLE accounts DROP COLUMN home_node;
