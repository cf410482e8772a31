// Command mysqlcheck tells scripts/test whether a MySQL or MariaDB server
// answers a DSN and lets that account make the databases the tests need.
//
//	go run ./scripts/mysqlcheck 'USER:PASS@tcp(127.0.0.1:3306)/'
//
// It creates a database named like the ones package dirtest makes, and
// drops it again, so a server that takes the login but refuses
// CREATE DATABASE is caught here, with one clear line, rather than in
// every MySQL test.
//
// Exit status:
//
//	0  the server answered and the account may create databases
//	2  nothing answered at the address (no server, or not yet started)
//	3  a server answered but refused the login
//	1  anything else: a bad DSN, missing privileges, a timeout
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB and MySQL error numbers for a refused login: 1045 is a wrong
// password, 1698 a unix_socket account reached over TCP.
const (
	errAccessDenied     = 1045
	errAccessDeniedNoPw = 1698
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mysqlcheck DSN")
		os.Exit(1)
	}
	version, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "mysqlcheck: %v\n", err)
		os.Exit(exitCode(err))
	}
	fmt.Println(version)
}

// check connects with dsn and answers the server's version string.
func check(dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	// A port where nothing listens must fail fast: the caller polls.
	cfg.Timeout = 3 * time.Second
	cfg.ReadTimeout = 10 * time.Second
	cfg.WriteTimeout = 10 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return "", err
	}
	db := sql.OpenDB(conn)
	defer db.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var version string
	err = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}

	b := make([]byte, 6)
	rand.Read(b)
	name := "egret_t_check_" + hex.EncodeToString(b)
	_, err = db.ExecContext(ctx, "CREATE DATABASE "+name)
	if err != nil {
		return "", fmt.Errorf("user %q may not create databases named egret_t_*: %w", cfg.User, err)
	}
	_, err = db.ExecContext(ctx, "DROP DATABASE "+name)
	if err != nil {
		return "", fmt.Errorf("drop %s: %w", name, err)
	}
	return version, nil
}

func exitCode(err error) int {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case errAccessDenied, errAccessDeniedNoPw:
			return 3
		}
		return 1
	}
	var opErr *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &opErr) && opErr.Op == "dial") {
		return 2
	}
	return 1
}
