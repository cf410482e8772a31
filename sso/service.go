package sso

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/egretair/egret/directory"
)

// Defaults for the zero values of Service's durations.
const (
	DefaultTokenTTL   = 60 * time.Second
	DefaultSessionTTL = 8 * time.Hour
	DefaultKeyGrace   = 24 * time.Hour
)

// ErrInvalidLink is every refusal of a token or preauth link: unknown,
// used, expired, tampered with, or for an account that is not enabled.
var ErrInvalidLink = errors.New("sso: the link is invalid or has expired")

// ErrNoSession means the session id names no live session.
var ErrNoSession = errors.New("sso: no such session")

// Service issues and redeems login tokens and preauth links, and keeps
// web sessions. Dir must be set; the zero durations take the defaults.
type Service struct {
	Dir *directory.Store
	// TokenTTL is how long a login token works.
	TokenTTL time.Duration
	// SessionTTL is how long a web session lasts after sign-in.
	SessionTTL time.Duration
	// KeyGrace is how long a rotated preauth key still verifies.
	KeyGrace time.Duration
	// Now answers the time; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Grant is a redeemed login: who signed in and where to go.
type Grant struct {
	AccountID  string
	ReturnPath string
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) db(ctx context.Context) *gorm.DB {
	return s.Dir.DB().WithContext(ctx)
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// enabledAccount answers the account who names (id, address or login)
// when it is enabled, else directory.ErrNotFound.
func (s *Service) enabledAccount(ctx context.Context, who string) (*directory.Account, error) {
	acct, _, err := s.Dir.FindAccount(ctx, who)
	if err != nil {
		return nil, err
	}
	if acct.Status != directory.AccountEnabled || acct.DeletedAt != nil {
		return nil, directory.ErrNotFound
	}
	return acct, nil
}

// Account answers the enabled mail account with this id, for a session.
func (s *Service) Account(ctx context.Context, id string) (*directory.Account, error) {
	acct, err := s.enabledAccount(ctx, id)
	if err != nil {
		return nil, err
	}
	if acct.ID != id {
		return nil, directory.ErrNotFound
	}
	return acct, nil
}

// ms answers t as Unix milliseconds, the form instants are stored in.
func ms(t time.Time) int64 { return t.UnixMilli() }

func wrapDB(what string, err error) error {
	return fmt.Errorf("sso: %s: %w", what, err)
}
