// Package dirtest gives tests a fresh, migrated directory store on each
// database kind egret supports.
//
// SQLite needs nothing. MySQL/MariaDB tests read the server from
// EGRET_TEST_MYSQL_DSN, a go-sql-driver DSN without a database name
// ("root@tcp(127.0.0.1:3306)/"); each test gets a database of its own,
// dropped when the test ends. Where the variable is unset the MySQL cases
// fail under CI (CI=true), since a missing server there is a broken
// set-up, and are skipped with that reason elsewhere, so `go test` on a
// laptop without MariaDB still runs the rest. The test command
// (scripts/test) always sets it.
//
// StartPair (pair.go) starts a private MariaDB primary and replica for
// tests of the store's replicas and of failover; it needs the server
// programs, not EGRET_TEST_MYSQL_DSN.
package dirtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/egretair/egret/directory"
)

// Dialects lists the database kinds a test should run on.
var Dialects = []string{"sqlite", "mysql"}

// MySQLServerDSN answers the DSN of the MariaDB server for tests, or
// fails or skips t as the package comment says.
func MySQLServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("EGRET_TEST_MYSQL_DSN")
	if dsn != "" {
		return dsn
	}
	if os.Getenv("CI") != "" {
		t.Fatal("EGRET_TEST_MYSQL_DSN is not set under CI; run the tests with scripts/test")
	}
	t.Skip("EGRET_TEST_MYSQL_DSN is not set; scripts/test sets it up")
	return ""
}

// URL answers a database URL of the given kind for a new, empty database
// that lives as long as the test.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "egret.db")
	case "mysql":
		return "mysql://" + NewMySQLDatabase(t)
	}
	t.Fatalf("dirtest: unknown dialect %q", dialect)
	return ""
}

// NewMySQLDatabase creates a database on the test server, drops it when
// the test ends, and answers a DSN for it.
func NewMySQLDatabase(t testing.TB) string {
	t.Helper()
	server := MySQLServerDSN(t)
	admin, err := sql.Open("mysql", server)
	if err != nil {
		t.Fatalf("dirtest: %v", err)
	}
	defer admin.Close()

	b := make([]byte, 6)
	rand.Read(b)
	name := "egret_t_" + hex.EncodeToString(b)
	ctx := context.Background()
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	if err != nil {
		t.Fatalf("dirtest: create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("mysql", server)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name)
	})

	// The server DSN ends in "/" before any parameters.
	base, params, _ := strings.Cut(server, "?")
	dsn := strings.TrimSuffix(base, "/") + "/" + name
	if params != "" {
		dsn += "?" + params
	}
	return dsn
}

// Open answers a migrated store on a new database of the given kind,
// closed when the test ends.
func Open(t testing.TB, dialect string) *directory.Store {
	t.Helper()
	s, err := directory.Open(context.Background(), URL(t, dialect))
	if err != nil {
		t.Fatalf("dirtest: open %s store: %v", dialect, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
