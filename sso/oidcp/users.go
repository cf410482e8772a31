package oidcp

import (
	"context"
	"errors"
	"fmt"

	"github.com/egretair/egret/directory"
)

// ErrRefused is answered when a user may not sign in: unknown, wrong
// password, disabled, or gone. The cases are not told apart.
var ErrRefused = errors.New("oidcp: sign-in refused")

// Identity is what the provider says about a person in tokens.
type Identity struct {
	// Subject is the person's stable id in the directory.
	Subject string
	Login   string
	Email   string
	Name    string
}

// Users reads people from the directory.
type Users struct{ Store *directory.Store }

// identity answers the identity of an enabled account of an active
// person, or ErrRefused.
func identity(acct *directory.Account, p *directory.Person) (Identity, error) {
	if p == nil || acct.Status != directory.AccountEnabled || p.Status != directory.PersonActive {
		return Identity{}, ErrRefused
	}
	return Identity{Subject: p.ID, Login: p.Login, Email: acct.Address, Name: p.DisplayName}, nil
}

// Password checks a login (or address) and password.
func (u Users) Password(ctx context.Context, username, password string) (Identity, error) {
	m, err := u.Store.Authenticate(ctx, username, password)
	if errors.Is(err, directory.ErrBadCredentials) {
		return Identity{}, ErrRefused
	}
	if err != nil {
		return Identity{}, err
	}
	return u.Find(ctx, m.ID)
}

// Find answers the identity of the account that who names: its id, its
// address or its owner's login.
func (u Users) Find(ctx context.Context, who string) (Identity, error) {
	acct, p, err := u.Store.FindAccount(ctx, who)
	if errors.Is(err, directory.ErrNotFound) {
		return Identity{}, ErrRefused
	}
	if err != nil {
		return Identity{}, fmt.Errorf("oidcp: find %q: %w", who, err)
	}
	return identity(acct, p)
}

// BySubject answers the identity of a person by id, refusing one who
// has left or whose account is disabled since the token was issued. It
// reads the primary while that is up, so a disabled account is refused
// at once, and a replica while it is down, so tokens still work.
func (u Users) BySubject(ctx context.Context, subject string) (Identity, error) {
	p, acct, err := u.Store.SignInPerson(ctx, subject)
	if errors.Is(err, directory.ErrNotFound) {
		return Identity{}, ErrRefused
	}
	if err != nil {
		return Identity{}, fmt.Errorf("oidcp: person %s: %w", subject, err)
	}
	if acct == nil {
		return Identity{}, ErrRefused
	}
	return identity(acct, p)
}
