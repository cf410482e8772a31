package main

import (
	"context"
	"errors"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
)

// mailAccounts lets the mail engine read accounts from the directory,
// translating the directory's errors into the engine's.
type mailAccounts struct {
	store *directory.Store
}

func (m mailAccounts) LookupAddress(ctx context.Context, address string) (mailcore.Account, error) {
	a, err := m.store.LookupAddress(ctx, address)
	if errors.Is(err, directory.ErrNotFound) {
		return mailcore.Account{}, mailcore.ErrNoAccount
	}
	return mailcore.Account(a), err
}

func (m mailAccounts) Authenticate(ctx context.Context, username, password string) (mailcore.Account, error) {
	a, err := m.store.Authenticate(ctx, username, password)
	if errors.Is(err, directory.ErrBadCredentials) {
		return mailcore.Account{}, mailcore.ErrBadCredentials
	}
	return mailcore.Account(a), err
}
