package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/mailview"
	"github.com/egretair/egret/mailcore/peer"
)

// Mailbox facts in a cluster. The mail is on the account's back, so a
// front asks the back for the facts over HTTP, at factsPath, and the
// back answers them from its store. The path is for fronts only: a
// request must come from cluster.proxy_sources and carry the cluster
// proxy secret as its bearer token. The same path removes an account's
// mail for a purge (see mailbox.go).

// factsPath is the back's route for mailbox facts; the account id
// follows it.
const factsPath = "/internal/v1/mailbox/"

// factsTimeout bounds one request for facts from a front to a back. A
// back slower than this is reported to its breaker as failing.
const factsTimeout = 3 * time.Second

// errFactsRefused is a back's answer other than 200 to a front.
var errFactsRefused = errors.New("mailbox facts: refused by the back")

// backFacts serves mailbox facts on a back to its fronts.
type backFacts struct {
	dir     *directory.Store
	view    *mailview.Reader
	secret  string
	sources []netip.Prefix
	log     *slog.Logger
}

// allowed reports whether r comes from a front.
func (b *backFacts) allowed(r *http.Request) bool {
	return fromFront(r, b.secret, b.sources)
}

// fromFront reports whether r comes from a front: from a proxy source,
// with the secret as its bearer token. The secret is compared in
// constant time so its bytes cannot be guessed one by one from the
// answer's delay.
func fromFront(r *http.Request, secret string, sources []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	from := ap.Addr().Unmap()
	inside := false
	for _, p := range sources {
		if p.Contains(from) {
			inside = true
			break
		}
	}
	got := []byte(r.Header.Get("Authorization"))
	want := []byte("Bearer " + secret)
	return inside && subtle.ConstantTimeCompare(got, want) == 1
}

// ServeHTTP answers GET factsPath{account}?latest=N with the account's
// facts as JSON.
func (b *backFacts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !b.allowed(r) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	latest, err := strconv.Atoi(r.URL.Query().Get("latest"))
	if err != nil || latest < 0 || latest > mailview.MaxLatest {
		http.Error(w, "latest: want 0 to 50", http.StatusBadRequest)
		return
	}
	id := r.PathValue("account")
	acct, _, err := b.dir.FindAccount(r.Context(), id)
	if errors.Is(err, directory.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		b.log.Error("mailbox facts not read", "account", id, "err", err)
		http.Error(w, "directory unavailable", http.StatusServiceUnavailable)
		return
	}
	facts, err := b.view.Facts(r.Context(), acct.ID, acct.QuotaBytes, latest)
	if err != nil {
		b.log.Error("mailbox facts not read", "account", acct.ID, "err", err)
		http.Error(w, "mailbox unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(facts)
}

// frontFacts reads mailbox facts for a front from each account's back;
// see api.FactsReader.
//
// Failure semantics. A back whose breaker is open is not asked: the
// answer is peer.ErrUnavailable at once. A back that cannot be reached
// or does not answer within factsTimeout is reported to its breaker;
// one that answers, even to refuse, is reported well. For a back
// listed twice, the outcome goes to the member asked.
type frontFacts struct {
	homes  *homes
	peers  *peer.Peers
	secret string
	client *http.Client
}

// Facts asks the account's back for its facts.
func (f *frontFacts) Facts(ctx context.Context, accountID string, quota int64, latest int) (mailview.Facts, error) {
	name, err := f.homes.lookup(ctx, accountID)
	if err != nil {
		return mailview.Facts{}, fmt.Errorf("mailbox facts: home node of %s: %w", accountID, err)
	}
	b, breaker, err := f.homes.call(name)
	if err != nil {
		return mailview.Facts{}, fmt.Errorf("mailbox facts of %s: %w", accountID, err)
	}

	ctx, cancel := context.WithTimeout(ctx, factsTimeout)
	defer cancel()
	u := "http://" + b.HTTP + factsPath + url.PathEscape(accountID) +
		"?latest=" + strconv.Itoa(latest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return mailview.Facts{}, err
	}
	req.Header.Set("Authorization", "Bearer "+f.secret)
	resp, err := f.client.Do(req)
	if err != nil {
		f.peers.Report(breaker, err)
		return mailview.Facts{}, fmt.Errorf("mailbox facts from %s: %w", name, err)
	}
	defer resp.Body.Close()
	var facts mailview.Facts
	if resp.StatusCode != http.StatusOK {
		f.peers.Report(breaker, nil)
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return facts, fmt.Errorf("%w: %s answered %s", errFactsRefused, name, resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&facts)
	var ne net.Error
	if errors.As(err, &ne) {
		// The back stopped answering half way.
		f.peers.Report(breaker, err)
	} else {
		f.peers.Report(breaker, nil)
	}
	if err != nil {
		return mailview.Facts{}, fmt.Errorf("mailbox facts from %s: %w", name, err)
	}
	facts.QuotaBytes = quota
	return facts, nil
}
