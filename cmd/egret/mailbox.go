package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/peer"
	"github.com/egretair/egret/mailcore/store"
)

// Purge in a cluster. A deleted account's mail is on its back, so a
// front, whose purge removes the account, asks the back to remove the
// mail first, with DELETE at factsPath{account}, guarded as the facts
// are. The back removes only the mail of an account that is deleted or
// gone from the directory. A back that cannot be reached, or refuses,
// fails the purge of that account, which then keeps its directory rows
// and is tried again on the next run: no mail is left without its
// account. The request is plain HTTP: the secret crosses to the back
// unencrypted, so the network between fronts and backs must stay
// private (see "The layout" in docs/runbook.md).

// removeTimeout bounds one removal on a back.
const removeTimeout = 30 * time.Second

// backMailbox removes an account's mail on a back for its fronts.
type backMailbox struct {
	dir     *directory.Store
	mail    *store.Store
	secret  string
	sources []netip.Prefix
	log     *slog.Logger
}

// ServeHTTP answers DELETE factsPath{account}: 204 once the mail is
// gone, also when there was none; 400 for what is not an account id
// as the directory writes them (a lowercase UUID), such as a login, an
// address or an id in capitals, which name no folder.
func (b *backMailbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !fromFront(r, b.secret, b.sources) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	id := r.PathValue("account")
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		http.Error(w, "not an account id", http.StatusBadRequest)
		return
	}
	acct, _, err := b.dir.FindAccount(r.Context(), id)
	switch {
	case errors.Is(err, directory.ErrNotFound):
	case err != nil:
		b.log.Error("mailbox not removed", "account", id, "err", err)
		http.Error(w, "directory unavailable", http.StatusServiceUnavailable)
		return
	case acct.ID == id && acct.Status != directory.AccountDeleted:
		http.Error(w, "the account is not deleted", http.StatusConflict)
		return
	}
	err = b.mail.RemoveAccount(r.Context(), id)
	if errors.Is(err, store.ErrBadName) {
		http.Error(w, "no such account id", http.StatusBadRequest)
		return
	}
	if err != nil {
		b.log.Error("mailbox not removed", "account", id, "err", err)
		http.Error(w, "mailbox not removed", http.StatusInternalServerError)
		return
	}
	b.log.Info("mailbox removed", "account", id)
	w.WriteHeader(http.StatusNoContent)
}

// frontMailboxes removes accounts' mail on their backs for a front's
// purge; see directory.Lifecycle.RemoveMailbox.
type frontMailboxes struct {
	dir   *directory.Store
	backs []backNode
	// back answers the node to call: with peers, the one whose
	// breaker Peers.Allow answered; without, the one that serves the
	// back named name now.
	back func(name string) (backNode, bool)
	// peers are the breakers consulted and fed; nil, for a command
	// run once, asks every back.
	peers  *peer.Peers
	secret string
	client *http.Client
}

// Remove removes the account's mail on its home back. An account with
// no home may have mail on any back, so each is asked.
func (f *frontMailboxes) Remove(ctx context.Context, accountID string) error {
	name, err := f.dir.PrimaryHomeNode(ctx, accountID)
	if errors.Is(err, directory.ErrNotFound) {
		// Purged meanwhile, mail first.
		return nil
	}
	if err != nil {
		return err
	}
	names := []string{name}
	if name == "" {
		names = nil
		for _, b := range f.backs {
			names = append(names, b.Name)
		}
	}
	for _, n := range names {
		if err := f.removeOn(ctx, n, accountID); err != nil {
			return err
		}
	}
	return nil
}

// removeOn asks the back named name to remove the account's mail. With
// breakers, the outcome goes to the one the request was sent through.
func (f *frontMailboxes) removeOn(ctx context.Context, name, accountID string) error {
	breaker := name
	if f.peers != nil {
		var err error
		if breaker, err = f.peers.Allow(name); err != nil {
			return fmt.Errorf("remove mailbox of %s: %w", accountID, err)
		}
	}
	b, ok := f.back(breaker)
	if !ok {
		return fmt.Errorf("remove mailbox of %s: no back node named %q in cluster.backs", accountID, name)
	}
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	u := "http://" + b.HTTP + factsPath + url.PathEscape(accountID)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+f.secret)
	resp, err := f.client.Do(req)
	if f.peers != nil {
		f.peers.Report(breaker, err)
	}
	if err != nil {
		return fmt.Errorf("remove mailbox of %s on %s: %w", accountID, name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("remove mailbox of %s: %s answered %s: %s", accountID, name, resp.Status, msg)
	}
	return nil
}

// backNamed answers the back named name among backs.
func backNamed(backs []backNode, name string) (backNode, bool) {
	for _, b := range backs {
		if b.Name == name {
			return b, true
		}
	}
	return backNode{}, false
}

// mailboxes answers the front's way to remove mail on its backs.
func (f *frontParts) mailboxes(secret string) *frontMailboxes {
	return &frontMailboxes{dir: f.homes.dir, backs: f.homes.backs, back: f.homes.node,
		peers: f.peers, secret: secret, client: &http.Client{}}
}
