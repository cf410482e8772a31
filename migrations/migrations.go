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

// Up applies every migration the database lacks and answers the version
// it is at afterwards.
func Up(ctx context.Context, db *sql.DB, d Dialect) (int64, error) {
	p, err := provider(db, d)
	if err != nil {
		return 0, err
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrations: up: %w", err)
	}
	return p.GetDBVersion(ctx)
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
