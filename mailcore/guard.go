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
// it is not nil (see Guarded).
func Authenticate(ctx context.Context, guard LoginGuard, accounts Accounts, user, password, remoteIP string) (Account, error) {
	var acct Account
	err := Guarded(ctx, guard, user, remoteIP, func(ctx context.Context) error {
		var err error
		acct, err = accounts.Authenticate(ctx, user, password)
		return err
	})
	if err != nil {
		return Account{}, err
	}
	return acct, nil
}

// AuthenticateToken checks an access token as tokens does, through
// guard when it is not nil (see Guarded). A client that names no user
// is counted under its address only.
func AuthenticateToken(ctx context.Context, guard LoginGuard, tokens TokenAuthenticator, user, token, remoteIP string) (Account, error) {
	var acct Account
	err := Guarded(ctx, guard, user, remoteIP, func(ctx context.Context) error {
		var err error
		acct, err = tokens.AuthenticateToken(ctx, user, token)
		return err
	})
	if err != nil {
		return Account{}, err
	}
	return acct, nil
}

// Guarded runs one sign-in attempt of user from remoteIP: check tests
// the credential and answers nil, ErrBadCredentials for a wrong one, or
// a temporary error. With a nil guard it is check alone. Otherwise the
// guard's delay comes first; while the user or the address is locked
// out the credential is still checked, so the answer takes as long as
// any other, and then refused with ErrBadCredentials whatever it was.
// Every sign-in with a secret (password form, IMAP, submission, the
// OpenID Connect login page, bearer tokens) goes through here, so one
// guesser is counted once whichever door it knocks on.
func Guarded(ctx context.Context, guard LoginGuard, user, remoteIP string, check func(context.Context) error) error {
	if guard == nil {
		return check(ctx)
	}
	wait, lockErr := guard.Check(ctx, user, remoteIP)
	if lockErr != nil && !errors.Is(lockErr, ErrLocked) {
		return lockErr
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	err := check(ctx)
	switch {
	case lockErr != nil:
		// Attempts during a lockout neither count nor extend it: the
		// lock ends when it said it would.
		if err == nil || errors.Is(err, ErrBadCredentials) {
			return ErrBadCredentials
		}
		return err
	case errors.Is(err, ErrBadCredentials):
		guard.Failed(ctx, user, remoteIP)
	case err == nil:
		guard.Succeeded(ctx, user, remoteIP)
	}
	return err
}
