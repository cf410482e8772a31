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

// check pings one database and, on a replica, reads its replication
// state.
func (s *Store) check(d *database) {
	ctx, cancel := context.WithTimeout(context.Background(), checkEvery)
	defer cancel()
	err := d.sql.PingContext(ctx)
	if err == nil && d.role == RoleReplica {
		err = s.checkReplication(ctx, d)
	}
	// The check's own deadline passing is the server hanging, which
	// is down here, though it is no lost connection to a caller whose
	// statement ran out of time.
	if err != nil && (d.role == RolePrimary || ctx.Err() != nil ||
		errors.Is(err, context.DeadlineExceeded) || connLost(ctx, err)) {
		d.up.Store(false)
	} else {
		d.up.Store(true)
	}
	d.setErr(err)
}

// checkReplication reads SHOW SLAVE STATUS (MariaDB and MySQL before
// 8.4 answer it). The error it answers is about replication, not about
// reaching the server, unless the query itself failed.
func (s *Store) checkReplication(ctx context.Context, d *database) error {
	rows, err := d.sql.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		d.behind.Store(true)
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if !rows.Next() {
		d.behind.Store(true)
		d.lagMS.Store(-1)
		return errors.New("not replicating: no replication configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return err
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
	d.lagMS.Store(lag)
	io, sqlThread := col["Slave_IO_Running"].String, col["Slave_SQL_Running"].String
	switch {
	case io != "Yes" || sqlThread != "Yes":
		d.behind.Store(true)
		return fmt.Errorf("replication threads not running (io %s, sql %s)", io, sqlThread)
	case lag < 0 || time.Duration(lag)*time.Millisecond > s.maxLag:
		d.behind.Store(true)
		return fmt.Errorf("replica %s behind the primary", time.Duration(lag)*time.Millisecond)
	}
	d.behind.Store(false)
	return nil
}
