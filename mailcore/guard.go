package mailcore

import (
	"context"
	"errors"
	"time"
)

// ErrLocked is what a LoginGuard's Check answers while the account or
// the client address is locked out. Callers answer it exactly as a
// wrong password, never as "locked", so a guesser learns nothing.
var ErrLocked = errors.New("mailcore: sign-in locked")

// LoginGuard slows and stops password guessing, per account and per
// client address. Every sign-in with a password asks it first and tells
// it the outcome; a server without one takes every attempt.
type LoginGuard interface {
	// Check answers how long to wait before checking the password,
	// and ErrLocked while the user or address is locked out.
	Check(ctx context.Context, user, remoteIP string) (time.Duration, error)
	// Failed records a wrong password (or an unknown user).
	Failed(ctx context.Context, user, remoteIP string)
	// Succeeded records a correct password.
	Succeeded(ctx context.Context, user, remoteIP string)
}

// Authenticate checks a password as accounts does, through guard when
// it is not nil: after the guard's delay; and while locked out the
// password is still checked, so the answer takes as long as any other,
// and then refused with ErrBadCredentials whatever it was.
func Authenticate(ctx context.Context, guard LoginGuard, accounts Accounts, user, password, remoteIP string) (Account, error) {
	if guard == nil {
		return accounts.Authenticate(ctx, user, password)
	}
	wait, lockErr := guard.Check(ctx, user, remoteIP)
	if lockErr != nil && !errors.Is(lockErr, ErrLocked) {
		return Account{}, lockErr
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Account{}, ctx.Err()
		}
	}
	acct, err := accounts.Authenticate(ctx, user, password)
	switch {
	case lockErr != nil:
		// Attempts during a lockout neither count nor extend it: the
		// lock ends when it said it would.
		if err == nil || errors.Is(err, ErrBadCredentials) {
			return Account{}, ErrBadCredentials
		}
		return Account{}, err
	case errors.Is(err, ErrBadCredentials):
		guard.Failed(ctx, user, remoteIP)
	case err == nil:
		guard.Succeeded(ctx, user, remoteIP)
	}
	return acct, err
}
