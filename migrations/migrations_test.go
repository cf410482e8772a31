package migrations_test

import (
	"context"
	"database/sql"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/migrations"
)

// files answers the migration file names of one dialect.
func files(t *testing.T, d migrations.Dialect) []string {
	t.Helper()
	fsys, err := migrations.FS(d)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestBothDialectsHaveTheSameHistory(t *testing.T) {
	mysql, sqlite := files(t, migrations.MySQL), files(t, migrations.SQLite)
	if len(mysql) == 0 || !slices.Equal(mysql, sqlite) {
		t.Fatalf("mysql has %v, sqlite has %v: want the same numbered files in each", mysql, sqlite)
	}
	for _, name := range mysql {
		if !strings.HasSuffix(path.Base(name), ".sql") || len(name) < 7 || strings.Trim(name[:5], "0123456789") != "" {
			t.Errorf("%s: want NNNNN_name.sql", name)
		}
	}
}

func TestUpIsCompleteAndRepeatable(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s, err := directory.Open(ctx, dirtest.URL(t, dialect))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Open applied everything; a second run changes nothing.
			v, err := s.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			list, err := s.Migrations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			last := list[len(list)-1]
			if v != last.Version {
				t.Fatalf("database at version %d, newest migration is %d", v, last.Version)
			}
			for _, m := range list {
				if !m.Applied {
					t.Errorf("migration %d (%s) not applied", m.Version, m.Name)
				}
			}
		})
	}
}

func TestUpRunsOnceWhenTwoNodesStartTogether(t *testing.T) {
	files := files(t, migrations.MySQL)
	want, _ := strconv.ParseInt(files[len(files)-1][:5], 10, 64)
	ctx := context.Background()
	// The race is narrow: a few fresh databases make it show without
	// the lock.
	for round := range 4 {
		dsn := dirtest.NewMySQLDatabase(t)
		// Each node has its own pool, as two processes would.
		var dbs [2]*sql.DB
		for i := range dbs {
			db, err := sql.Open("mysql", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			dbs[i] = db
		}
		var wg sync.WaitGroup
		errs := make([]error, len(dbs))
		versions := make([]int64, len(dbs))
		for i, db := range dbs {
			wg.Go(func() { versions[i], errs[i] = migrations.Up(ctx, db, migrations.MySQL) })
		}
		wg.Wait()
		for i := range dbs {
			if errs[i] != nil || versions[i] != want {
				t.Errorf("round %d, node %d: up = version %d, %v; want version %d",
					round, i, versions[i], errs[i], want)
			}
		}
	}
}

// A node that starts while another holds the migration lock waits for
// it, however short the read timeout of its database URL: the wait must
// not end in a broken connection when the timeout passes.
func TestUpWaitsForTheLockBeyondTheReadTimeout(t *testing.T) {
	ctx := context.Background()
	dsn := dirtest.NewMySQLDatabase(t)
	other, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	holder, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	// The lock Up takes, held by another node's session.
	var got sql.NullInt64
	if err := holder.QueryRowContext(ctx, "SELECT GET_LOCK('egret_migrations', 10)").Scan(&got); err != nil || got.Int64 != 1 {
		t.Fatalf("take the lock: %v, %v", got, err)
	}
	const hold = 4 * time.Second
	released := make(chan error, 1)
	go func() {
		time.Sleep(hold)
		_, err := holder.ExecContext(ctx, "DO RELEASE_LOCK('egret_migrations')")
		released <- err
	}()

	url := "mysql://" + dsn
	if strings.Contains(dsn, "?") {
		url += "&readTimeout=2s"
	} else {
		url += "?readTimeout=2s"
	}
	start := time.Now()
	s, err := directory.Open(ctx, url)
	took := time.Since(start)
	if err := <-released; err != nil {
		t.Fatalf("release the lock: %v", err)
	}
	if err != nil {
		t.Fatalf("open with the lock held for %v and a read timeout of 2s: %v after %v", hold, err, took)
	}
	defer s.Close()
	if took < hold-time.Second {
		t.Errorf("open took %v: it did not wait for the lock held for %v", took, hold)
	}
	list, err := s.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if !m.Applied {
			t.Errorf("migration %d (%s) not applied", m.Version, m.Name)
		}
	}
}
