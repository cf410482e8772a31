package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/egretair/egret/migrations"
)

// DefaultRetention is how long a deleted account is kept, restorable,
// before PurgeExpired removes it, when Lifecycle.Retention is zero.
const DefaultRetention = 30 * 24 * time.Hour

// MaxRetention bounds a retention period asked for per call.
const MaxRetention = 10 * 365 * 24 * time.Hour

// Lifecycle makes the changes the account-lifecycle API asks for: org
// units created, renamed, moved and deleted; accounts created, changed,
// disabled, deleted, restored and purged; aliases added and removed.
//
// Each call runs in one transaction that also appends its change-log
// rows, with the actor of the context (WithActor) and the record as it
// was before, so a refused or failed call changes nothing and a finished
// one is in the audit trail. Callers get a *FieldError for input that is
// wrong whatever the directory holds, a *ConflictError for input that
// clashes with what it holds, ErrNotFound for a record that is not there,
// and anything else wrapped, which is the database failing.
type Lifecycle struct {
	Store *Store
	// Domain is the mail domain; addresses on any other are refused.
	// Empty accepts every domain.
	Domain string
	// Retention is how long a deleted account is kept; zero means
	// DefaultRetention.
	Retention time.Duration
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
	// RemoveMailbox deletes an account's mail when the account is
	// purged. It must succeed, or do nothing and fail, and be safe to
	// call again for an account whose mail is already gone. Nil leaves
	// the mail on disk, under the account's id, for an operator.
	RemoveMailbox func(ctx context.Context, accountID string) error
	Log           *slog.Logger
}

func (l *Lifecycle) now() time.Time {
	if l.Now != nil {
		return l.Now().UTC()
	}
	return time.Now().UTC()
}

func (l *Lifecycle) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.Default()
}

func (l *Lifecycle) retention() time.Duration {
	if l.Retention > 0 {
		return l.Retention
	}
	return DefaultRetention
}

// FieldError refuses input that is wrong whatever the directory holds:
// a missing name, a malformed address, text that is not UTF-8.
type FieldError struct {
	// Field is the input field at fault, as the API spells it.
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	return "directory: " + e.Field + ": " + e.Message
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ConflictError refuses a change that clashes with the directory: a
// login or address that another account holds, a unit that still holds
// people, a move that would make a cycle, an account in the wrong state.
type ConflictError struct {
	Field   string
	Message string
	// Holders are the records in the way, where there are some.
	Holders []Holder
}

func (e *ConflictError) Error() string {
	return "directory: " + e.Field + ": " + e.Message
}

// Holder names a record that stands in the way of a change.
type Holder struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// IsConflict reports whether err is a *ConflictError.
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}

// txAttempts bounds the runs of one transaction that MySQL rolls back
// as a deadlock victim or after a lock wait timeout.
const txAttempts = 6

// tx runs fn in a transaction under ctx (and so under its actor). A
// transaction that MySQL picks as a deadlock's victim (error 1213) or
// whose lock wait times out (1205) is rolled back, having changed
// nothing, so it is run again after a random pause that doubles each
// time, up to txAttempts runs in all: concurrent creations take gap
// locks that deadlock each other as a matter of course. fn must leave
// what it learns in its own variables: it may run more than once.
func (l *Lifecycle) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	pause := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := l.Store.db.WithContext(ctx).Transaction(fn)
		if attempt == txAttempts || !lockConflict(err) {
			return err
		}
		wait := pause + rand.N(pause)
		pause *= 2
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// lockConflict reports whether err is MySQL's deadlock (1213) or lock
// wait timeout (1205), after which the transaction was rolled back.
func lockConflict(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1213 || myErr.Number == 1205)
}

// locked makes a query take row locks on MySQL, so that two changes to
// one account, or two claims of one address, wait for each other and the
// "before" each logs is the true one. SQLite has one writer at a time
// and no FOR UPDATE.
func (l *Lifecycle) locked(tx *gorm.DB) *gorm.DB {
	if l.Store.dialect == migrations.MySQL {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// logChange appends one change-log row with the record before and after,
// at the Lifecycle's time.
func (l *Lifecycle) logChange(tx *gorm.DB, entity, id, op string, before, after any) error {
	return appendChange(tx, l.now(), entity, id, op, before, after)
}

// appendChange appends one change-log row with the record before and
// after. A nil before is a creation; a nil after is a removal.
func appendChange(tx *gorm.DB, at time.Time, entity, id, op string, before, after any) error {
	data, err := json.Marshal(after)
	if err != nil {
		return fmt.Errorf("directory: change log of %s %s: %w", entity, id, err)
	}
	c := Change{
		At:       at,
		Entity:   entity,
		EntityID: id,
		Op:       op,
		Data:     string(data),
		Actor:    ActorFrom(tx.Statement.Context),
	}
	if before != nil {
		b, err := json.Marshal(before)
		if err != nil {
			return fmt.Errorf("directory: change log of %s %s: %w", entity, id, err)
		}
		s := string(b)
		c.Before = &s
	}
	if err := tx.Create(&c).Error; err != nil {
		return fmt.Errorf("directory: change log of %s %s: %w", entity, id, err)
	}
	return nil
}

// isDuplicate reports whether err is a unique-key violation: MySQL's
// error 1062 or SQLite's UNIQUE constraint. It is reached only when two
// writers race past the checks made in the transaction.
func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "Duplicate entry") || strings.Contains(s, "UNIQUE constraint failed")
}
