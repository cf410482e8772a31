package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrLost means the lease is held by another member, or under a newer
// fence.
var ErrLost = errors.New("lease: held by another node")

// ErrHeld means the lease has not lapsed and another member holds it.
var ErrHeld = errors.New("lease: held by another node and not expired")

// State is what the lease row says.
type State struct {
	// Name is the logical back.
	Name string
	// Holder is the node.name of the member holding the lease, "" for
	// none yet.
	Holder string
	// Fence is the number of the last acquisition.
	Fence uint64
	// Live is true while the lease has not lapsed.
	Live bool
	// StoreID is the id of the store folder the back serves (see
	// store.Fence), "" while none is recorded.
	StoreID string
}

// Lease is one logical back's row, seen by one member.
type Lease struct {
	DB *sql.DB
	// Name is the logical back, Holder this member's node.name.
	Name, Holder string
	// TTL is how long an acquisition or a renewal holds.
	TTL time.Duration
}

// micros answers the lease's lifetime in microseconds, for INTERVAL.
func (l *Lease) micros() int64 {
	return l.TTL.Microseconds()
}

// Acquire takes the lease when it has lapsed or is this member's
// already, under a new fence number, which it answers. It answers
// ErrHeld when another member holds a live lease.
func (l *Lease) Acquire(ctx context.Context) (uint64, error) {
	db := l.DB
	// The row is made once; a lapsed lease from the start.
	_, err := db.ExecContext(ctx, `INSERT IGNORE INTO back_leases
		(name, holder, fence, expires_at, updated_at)
		VALUES (?, '', 0, '2000-01-01 00:00:00', UTC_TIMESTAMP(6))`, l.Name)
	if err != nil {
		return 0, fmt.Errorf("lease %s: %w", l.Name, err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("lease %s: %w", l.Name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE back_leases
		SET holder = ?, fence = fence + 1,
		    expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
		    updated_at = UTC_TIMESTAMP(6)
		WHERE name = ? AND (holder = ? OR expires_at < UTC_TIMESTAMP(6))`,
		l.Holder, l.micros(), l.Name, l.Holder)
	if err != nil {
		return 0, fmt.Errorf("lease %s: acquire: %w", l.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("lease %s: acquire: %w", l.Name, err)
	}
	if n != 1 {
		return 0, ErrHeld
	}
	// The UPDATE holds the row's lock until the commit, so the fence
	// read here is the one this member just took.
	var fence uint64
	err = tx.QueryRowContext(ctx, `SELECT fence FROM back_leases
		WHERE name = ?`, l.Name).Scan(&fence)
	if err != nil {
		return 0, fmt.Errorf("lease %s: read fence: %w", l.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("lease %s: acquire: %w", l.Name, err)
	}
	return fence, nil
}

// Renew extends the lease held under fence by TTL from now. It answers
// ErrLost when the row names another holder or fence.
func (l *Lease) Renew(ctx context.Context, fence uint64) error {
	res, err := l.DB.ExecContext(ctx, `UPDATE back_leases
		SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
		    updated_at = UTC_TIMESTAMP(6)
		WHERE name = ? AND holder = ? AND fence = ?`,
		l.micros(), l.Name, l.Holder, fence)
	if err != nil {
		return fmt.Errorf("lease %s: renew: %w", l.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("lease %s: renew: %w", l.Name, err)
	}
	if n != 1 {
		return ErrLost
	}
	return nil
}

// Release lets the lease lapse now, so a standby need not wait out the
// TTL after a clean stop. A lease no longer held under fence is left
// alone.
func (l *Lease) Release(ctx context.Context, fence uint64) error {
	_, err := l.DB.ExecContext(ctx, `UPDATE back_leases
		SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, updated_at = UTC_TIMESTAMP(6)
		WHERE name = ? AND holder = ? AND fence = ?`,
		l.Name, l.Holder, fence)
	if err != nil {
		return fmt.Errorf("lease %s: release: %w", l.Name, err)
	}
	return nil
}

// Read answers the lease row as it stands; a back never acquired has
// an empty holder.
func (l *Lease) Read(ctx context.Context) (State, error) {
	st := State{Name: l.Name}
	err := l.DB.QueryRowContext(ctx, `SELECT holder, fence,
		expires_at > UTC_TIMESTAMP(6), store_id FROM back_leases WHERE name = ?`, l.Name).
		Scan(&st.Holder, &st.Fence, &st.Live, &st.StoreID)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("lease %s: read: %w", l.Name, err)
	}
	return st, nil
}

// RecordStore records id as the store the back serves, for the holder
// under fence, when the row records none yet. It answers ErrLost when
// the lease is no longer held under fence, and an error when the row
// records another store.
func (l *Lease) RecordStore(ctx context.Context, fence uint64, id string) error {
	_, err := l.DB.ExecContext(ctx, `UPDATE back_leases
		SET store_id = ?, updated_at = UTC_TIMESTAMP(6)
		WHERE name = ? AND holder = ? AND fence = ? AND store_id = ''`,
		id, l.Name, l.Holder, fence)
	if err != nil {
		return fmt.Errorf("lease %s: record store: %w", l.Name, err)
	}
	st, err := l.Read(ctx)
	if err != nil {
		return err
	}
	switch {
	case st.Holder != l.Holder || st.Fence != fence:
		return ErrLost
	case st.StoreID != id:
		return fmt.Errorf("lease %s: the lease records store %s, not %s", l.Name, st.StoreID, id)
	}
	return nil
}
