-- The store folder each back serves: a member that takes the lease
-- serves only a folder whose store-id file holds this id, so a standby
-- whose shared volume is not mounted does not take over onto an empty
-- folder. '' until the first holder records its folder's id; clearing
-- it lets the next holder adopt the folder it finds.
--
-- The lease's times are judged by UTC_TIMESTAMP(6) from this version
-- on, whatever a session's time_zone: the times written by NOW(6)
-- before are moved to UTC with this session's offset.

-- +goose Up
ALTER TABLE back_leases ADD COLUMN store_id VARCHAR(64) NOT NULL DEFAULT '';
UPDATE back_leases
  SET expires_at = expires_at + INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), UTC_TIMESTAMP(6)) MICROSECOND,
      updated_at = updated_at + INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), UTC_TIMESTAMP(6)) MICROSECOND;

-- +goose Down
ALTER TABLE back_leases DROP COLUMN store_id;
