package directory

// The primary's pool as gorm sees it, and how a lost server is told from
// a refused statement.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// gatedPool is the primary's connection pool as gorm sees it: it fails
// at once while the primary is known down and marks it down, with
// ErrUnavailable, when a statement finds no server. A statement that
// ends because its own context ran out or was cancelled says nothing of
// the server and marks nothing.
type gatedPool struct {
	db *sql.DB
	d  *database
}

func (p gatedPool) gate() error {
	if !p.d.up.Load() {
		return fmt.Errorf("%w: %s is down", ErrUnavailable, p.d.addr)
	}
	return nil
}

func (p gatedPool) seen(ctx context.Context, err error) error {
	if connLost(ctx, err) {
		p.d.up.Store(false)
		if !errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return err
}

func (p gatedPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if err := p.gate(); err != nil {
		return nil, err
	}
	st, err := p.db.PrepareContext(ctx, query)
	return st, p.seen(ctx, err)
}

func (p gatedPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := p.gate(); err != nil {
		return nil, err
	}
	res, err := p.db.ExecContext(ctx, query, args...)
	return res, p.seen(ctx, err)
}

func (p gatedPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := p.gate(); err != nil {
		return nil, err
	}
	rows, err := p.db.QueryContext(ctx, query, args...)
	return rows, p.seen(ctx, err)
}

// QueryRowContext cannot refuse: *sql.Row carries its error out of
// reach of a caller. gorm uses it only for single-value reads. A lost
// server still marks the primary down.
func (p gatedPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	row := p.db.QueryRowContext(ctx, query, args...)
	p.seen(ctx, row.Err())
	return row
}

func (p gatedPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	if err := p.gate(); err != nil {
		return nil, err
	}
	tx, err := p.db.BeginTx(ctx, opts)
	return tx, p.seen(ctx, err)
}

// GetDBConn lets gorm's DB() find the pool underneath, for migrations.
func (p gatedPool) GetDBConn() (*sql.DB, error) { return p.db, nil }

// connLost reports whether err, met by a statement run under ctx, means
// the server was not reached or the connection died, as opposed to a
// statement the server refused or one that ran out of time. When ctx is
// done, or err is a context's deadline or cancellation, the statement
// was slow or its caller gave up: that is no news of the server, and
// the driver's broken-connection errors that follow a cancelled
// statement are not either. The server's own hang is found by the
// checker's ping, and by the driver's read and write timeouts (see
// ParseURL), whose errors are not context errors.
func connLost(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var myErr *mysql.MySQLError
	switch {
	case errors.Is(err, ErrUnavailable),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &opErr),
		errors.As(err, &dnsErr):
		return true
	case errors.As(err, &myErr):
		// 1053: server shutdown in progress; 1927: connection killed.
		return myErr.Number == 1053 || myErr.Number == 1927
	}
	return false
}

// markLostConns wraps, with ErrUnavailable, the connection errors of
// statements run inside a transaction, where the gated pool no longer
// sees them.
func markLostConns(db *gorm.DB) error {
	mark := func(tx *gorm.DB) {
		if connLost(tx.Statement.Context, tx.Error) && !errors.Is(tx.Error, ErrUnavailable) {
			tx.Error = fmt.Errorf("%w: %w", ErrUnavailable, tx.Error)
		}
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().After("*").Register("egret:unavailable", mark),
		cb.Query().After("*").Register("egret:unavailable", mark),
		cb.Update().After("*").Register("egret:unavailable", mark),
		cb.Delete().After("*").Register("egret:unavailable", mark),
		cb.Raw().After("*").Register("egret:unavailable", mark),
		cb.Row().After("*").Register("egret:unavailable", mark),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}
