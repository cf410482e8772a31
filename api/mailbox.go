package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/mailview"
)

// defaultLatest is how many recent messages the mailbox facts list
// when the caller does not say.
const defaultLatest = 5

// FactsReader answers an account's mailbox facts; quota is put in
// them as is. mailview.Reader is one, over a local store.
type FactsReader interface {
	Facts(ctx context.Context, accountID string, quota int64, latest int) (mailview.Facts, error)
}

// facts answers where the mailbox facts come from, nil for nowhere.
func (s *Server) facts() FactsReader {
	if s.Facts != nil {
		return s.Facts
	}
	if s.Mail != nil {
		return s.Mail
	}
	return nil
}

// mailboxFacts answers a user's mailbox counts and latest messages.
// {id} is what GET /users/{id} takes (a person id, OA id or login), an
// account id or an address.
func (s *Server) mailboxFacts(w http.ResponseWriter, r *http.Request) {
	src := s.facts()
	if src == nil {
		notConfigured(w, "the mail store")
		return
	}
	latest := defaultLatest
	if v := r.URL.Query().Get("latest"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > mailview.MaxLatest {
			writeError(w, http.StatusBadRequest, codeInvalid, "latest: want 0 to 50")
			return
		}
		latest = n
	}
	acct, err := s.findAccount(r)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	facts, err := src.Facts(r.Context(), acct.ID, acct.QuotaBytes, latest)
	if err != nil {
		s.log().Error("mailbox facts not read", "account", acct.ID, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the mailbox is not available; try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account_id": acct.ID, "address": acct.Address, "mailbox": facts})
}

// findAccount answers the account of the user that {id} names as every
// /users/{id} route reads it (findUser), or else the account whose id
// or address {id} is.
func (s *Server) findAccount(r *http.Request) (*directory.Account, error) {
	u, err := s.findUser(r)
	if err == nil {
		if u.Account == nil {
			return nil, fmt.Errorf("%w: user %s has no mail account", directory.ErrNotFound, u.ID)
		}
		return u.Account, nil
	}
	if !errors.Is(err, directory.ErrNotFound) {
		return nil, err
	}
	acct, _, err := s.Store.FindAccount(r.Context(), r.PathValue("id"))
	if errors.Is(err, directory.ErrNotFound) {
		return nil, fmt.Errorf("%w: user or account %q", directory.ErrNotFound, r.PathValue("id"))
	}
	return acct, err
}
