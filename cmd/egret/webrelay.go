package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/egretair/egret/mailcore/peer"
	"github.com/egretair/egret/sso"
	"github.com/egretair/egret/sso/web"
)

// Web mailbox in a cluster. A front's own store is empty, so the pages
// that read or change mail (the list, a message, an attachment, a
// flag) are relayed, for a signed-in session, to the account's back,
// with the cluster proxy secret as bearer token. The back serves them
// only to such requests (see backHTTP) and reads the session cookie
// itself: sessions are in the shared database. Sign-in, sign-out and a
// request without a live session stay on the front, whose pages ask
// for no mail. The relay is plain HTTP: the secret and the session
// cookie cross to the back unencrypted, so the network between fronts
// and backs must stay private (see "The layout" in docs/runbook.md).
//
// Failure semantics. A back whose breaker is open is not asked; one
// that cannot be reached, or sends no answer within webHeaderTimeout,
// is reported to its breaker (for a back listed twice, the member the
// request went to). Either way the browser gets the mailbox's 503 page
// at once. A back that answers, even with an error page, is reported
// well and its answer passed on.

// webRelayed are the web mailbox's paths that read or change mail.
var webRelayed = map[string]bool{
	"/mail/": true, "/mail/read": true, "/mail/part": true, "/mail/flag": true,
}

// Bounds on a relayed request: to connect to the back, and to have the
// first byte of its answer.
const (
	webDialTimeout   = 3 * time.Second
	webHeaderTimeout = 10 * time.Second
)

// webRetryAfter is the Retry-After, in seconds, of the 503 page.
const webRetryAfter = 10

// webRelay serves the web mailbox on a front.
type webRelay struct {
	local     http.Handler
	web       *web.Server
	sso       *sso.Service
	homes     *homes
	peers     *peer.Peers
	secret    string
	transport http.RoundTripper
	log       *slog.Logger
}

// webRelay makes the front's web mailbox over the node's own, local.
func (f *frontParts) webRelay(local http.Handler, s *signIn, secret string, log *slog.Logger) *webRelay {
	return &webRelay{local: local, web: s.web, sso: s.sso, homes: f.homes, peers: f.peers,
		secret: secret, log: log,
		transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: webDialTimeout}).DialContext,
			ResponseHeaderTimeout: webHeaderTimeout,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       time.Minute,
		}}
}

// ServeHTTP relays a signed-in request for mail to the account's back
// and serves the rest from the front.
func (rl *webRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !webRelayed[r.URL.Path] {
		rl.local.ServeHTTP(w, r)
		return
	}
	c, err := r.Cookie(rl.web.SessionCookie())
	if err != nil {
		rl.local.ServeHTTP(w, r)
		return
	}
	sess, err := rl.sso.Session(r.Context(), c.Value)
	if errors.Is(err, sso.ErrNoSession) {
		// The front sends the browser to sign in.
		rl.local.ServeHTTP(w, r)
		return
	}
	if err != nil {
		rl.log.Error("web session not checked", slog.Any("err", err))
		rl.web.Unavailable(w, webRetryAfter)
		return
	}
	name, err := rl.homes.lookup(r.Context(), sess.AccountID)
	if err != nil {
		rl.log.Error("web mailbox: home node not read", slog.String("account", sess.AccountID), slog.Any("err", err))
		rl.web.Unavailable(w, webRetryAfter)
		return
	}
	b, breaker, err := rl.homes.call(name)
	if err != nil {
		// A back that may not be called now is no news for the log.
		var ue *peer.UnavailableError
		if !errors.As(err, &ue) || ue.Unknown {
			rl.log.Error("web mailbox: home node not in cluster.backs", slog.String("account", sess.AccountID),
				slog.String("node", name))
		}
		rl.web.Unavailable(w, webRetryAfter)
		return
	}
	rl.proxy(breaker, b.HTTP).ServeHTTP(w, r)
}

// proxy answers the relay of one request to addr, the back node whose
// breaker is named name.
func (rl *webRelay) proxy(name, addr string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.Out.Header.Set("Authorization", "Bearer "+rl.secret)
		},
		Transport: rl.transport,
		ModifyResponse: func(*http.Response) error {
			rl.peers.Report(name, nil)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The browser went away; the back is not at fault.
				return
			}
			rl.peers.Report(name, err)
			rl.log.Warn("web mailbox: back did not answer", slog.String("node", name), slog.Any("err", err))
			rl.web.Unavailable(w, webRetryAfter)
		},
		ErrorLog: slog.NewLogLogger(rl.log.Handler(), slog.LevelWarn),
	}
}
