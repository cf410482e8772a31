// Package migrations holds egret's database schema as numbered SQL files,
// one history for each database kind, embedded in the binary.
//
// Layout:
//
//	mysql/NNNNN_name.sql   MySQL and MariaDB
//	sqlite/NNNNN_name.sql  SQLite, the embedded default
//
// Both folders carry the same version numbers with the same meaning, so a
// database of either kind at version N has the same tables and columns. A
// test holds the two lists equal. Files are applied with goose and never
// edited once released: a change of schema is a new file in each folder.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
)

//go:embed mysql/*.sql sqlite/*.sql
var files embed.FS

// Dialect names a database kind: "mysql" or "sqlite".
type Dialect string

// The supported dialects.
const (
	MySQL  Dialect = "mysql"
	SQLite Dialect = "sqlite"
)

func (d Dialect) gooseDialect() (goose.Dialect, error) {
	switch d {
	case MySQL:
		return goose.DialectMySQL, nil
	case SQLite:
		return goose.DialectSQLite3, nil
	}
	return "", fmt.Errorf("migrations: unknown dialect %q", string(d))
}

// FS answers the migration files of one dialect.
func FS(d Dialect) (fs.FS, error) {
	if _, err := d.gooseDialect(); err != nil {
		return nil, err
	}
	return fs.Sub(files, string(d))
}

func provider(db *sql.DB, d Dialect) (*goose.Provider, error) {
	gd, err := d.gooseDialect()
	if err != nil {
		return nil, err
	}
	fsys, err := FS(d)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(gd, db, fsys)
}

// lockName is the MySQL named lock that Up holds: goose takes no lock
// of its own on MySQL, and two nodes started at once on a fresh
// database would otherwise both create the same tables.
const lockName = "egret_migrations"

// lockWait bounds the wait for another node's migrations.
const lockWait = 120 * time.Second

// Up applies every migration the database lacks and answers the version
// it is at afterwards. On MySQL it holds a named lock meanwhile, so
// nodes started together apply each migration once: the others wait,
// then find nothing left to do. The wait, and a migration's statements,
// may outlast a driver's read timeout: db should set none (go-sql-driver's
// readTimeout, writeTimeout), or a wait that outlasts it fails with a
// broken connection.
func Up(ctx context.Context, db *sql.DB, d Dialect) (int64, error) {
	p, err := provider(db, d)
	if err != nil {
		return 0, err
	}
	if d == MySQL {
		unlock, err := lock(ctx, db)
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrations: up: %w", err)
	}
	return p.GetDBVersion(ctx)
}

// lock takes the named lock on a connection of its own, which holds it
// until unlock: a MySQL named lock belongs to the session that took it.
func lock(ctx context.Context, db *sql.DB) (unlock func(), err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: lock: %w", err)
	}
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lockName,
		int(lockWait/time.Second)).Scan(&got)
	if err == nil && got.Int64 != 1 {
		err = fmt.Errorf("another node held %s for %s", lockName, lockWait)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("migrations: lock: %w", err)
	}
	return func() {
		var released sql.NullInt64
		conn.QueryRowContext(context.Background(), "SELECT RELEASE_LOCK(?)",
			lockName).Scan(&released)
		conn.Close()
	}, nil
}

// Status is one migration's state in a database.
type Status struct {
	Version int64
	Name    string
	Applied bool
}

// List answers the state of every known migration, oldest first.
func List(ctx context.Context, db *sql.DB, d Dialect) ([]Status, error) {
	p, err := provider(db, d)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		out = append(out, Status{
			Version: s.Source.Version,
			Name:    s.Source.Path,
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}
