package directory

// The health checker: every second, a ping of each database and, on a
// replica, its replication state.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// checker pings every database of a store until stop is closed.
func (s *Store) checker(stop <-chan struct{}) {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.checkAll()
		}
	}
}

// checkAll checks every database at once, so one that hangs does not
// delay news of the others.
func (s *Store) checkAll() {
	var wg sync.WaitGroup
	for _, d := range s.all() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.check(d)
		}()
	}
	wg.Wait()
}

// check pings one database over its own connection and, on a replica,
// reads its replication state. A check that does not reach the server
// marks it down at once when the connection was lost (refused, reset),
// else at the store's downAfter-th failure in a row; one that does
// reach it marks it up. A replica not reached is behind meanwhile: its
// lag is not known.
func (s *Store) check(d *database) {
	ctx, cancel := context.WithTimeout(context.Background(), checkEvery)
	defer cancel()
	err := d.probe.PingContext(ctx)
	failed := err != nil
	if !failed && d.role == RoleReplica {
		err = s.checkReplication(ctx, d)
		// A query that ran out of the check's time failed as a ping
		// would; one the server refused (a missing privilege)
		// reached it, and only makes the replica behind.
		failed = err != nil && (ctx.Err() != nil ||
			errors.Is(err, context.DeadlineExceeded) || connLost(ctx, err))
	}
	switch {
	case !failed:
		d.fails.Store(0)
		d.up.Store(true)
	case d.fails.Add(1) >= s.downAfter || connLost(ctx, err):
		d.up.Store(false)
	}
	if failed && d.role == RoleReplica {
		d.behind.Store(true)
		d.lagMS.Store(-1)
	}
	if !failed && (d.role != RoleReplica || !d.behind.Load()) {
		d.seenWell.Store(time.Now().UnixNano())
	}
	d.setErr(err)
}

// checkReplication reads SHOW SLAVE STATUS (MariaDB and MySQL before
// 8.4 answer it) and records the replica's lag and whether it is
// behind; a replica whose state cannot be read is behind, its lag
// unknown. The error it answers is about replication, not about
// reaching the server, unless the query itself failed.
func (s *Store) checkReplication(ctx context.Context, d *database) error {
	lag, err := s.replication(ctx, d)
	d.lagMS.Store(lag)
	d.behind.Store(err != nil)
	return err
}

// replication answers a replica's lag in milliseconds (-1 when not
// known) and, when it must not serve reads first, why.
func (s *Store) replication(ctx context.Context, d *database) (int64, error) {
	rows, err := d.probe.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return -1, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return -1, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return -1, err
		}
		return -1, errors.New("not replicating: no replication configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return -1, err
	}
	col := map[string]sql.NullString{}
	for i, c := range cols {
		col[c] = vals[i]
	}

	lag := int64(-1)
	if v := col["Seconds_Behind_Master"]; v.Valid {
		if n, err := strconv.ParseInt(v.String, 10, 64); err == nil {
			lag = n * 1000
		}
	}
	io, sqlThread := col["Slave_IO_Running"].String, col["Slave_SQL_Running"].String
	d.applying.Store(sqlThread == "Yes")
	switch {
	case io != "Yes" || sqlThread != "Yes":
		return lag, fmt.Errorf("replication threads not running (io %s, sql %s)", io, sqlThread)
	case lag < 0:
		return lag, errors.New("replica's lag not known")
	case time.Duration(lag)*time.Millisecond > s.maxLag:
		return lag, fmt.Errorf("replica %s behind the primary", time.Duration(lag)*time.Millisecond)
	}
	return lag, nil
}
