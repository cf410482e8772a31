package main

import (
	"context"
	"errors"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/store"
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

// ExpandList makes the directory's lists known to the SMTP server
// (mailcore.Lists).
func (m mailAccounts) ExpandList(ctx context.Context, address, sender string) ([]mailcore.Account, bool, error) {
	exp, err := m.store.ExpandList(ctx, address, sender)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !exp.MayPost {
		return nil, true, &mailcore.PostRefusal{List: exp.List.Address,
			Policy: exp.List.Posting}
	}
	out := make([]mailcore.Account, len(exp.Members))
	for i, a := range exp.Members {
		out[i] = mailcore.Account(a)
	}
	return out, true, nil
}

// mailUsage answers the bytes an account's mailboxes hold, for the SMTP
// server's check of full mailboxes at RCPT.
func mailUsage(st *store.Store) func(context.Context, string) (int64, error) {
	return func(ctx context.Context, accountID string) (int64, error) {
		u, err := st.Usage(ctx, accountID)
		return u.Bytes, err
	}
}

// SendAs lets an account send as its own address and its aliases: the
// addresses the directory resolves to it.
func (m mailAccounts) SendAs(ctx context.Context, accountID, address string) (bool, error) {
	a, err := m.store.LookupAddress(ctx, address)
	if errors.Is(err, directory.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return a.ID == accountID, nil
}
