// Package outbound carries queued messages to their recipients: those of
// the local mail domain over LMTP to the store, all others over SMTP to
// the MX hosts of their domain (RFC 5321 §5.1).
//
// # Failure semantics
//
// Every recipient gets its own answer, which the queue records:
//
//   - a 5xx reply to its RCPT, or to the DATA of a transaction it took
//     part in, is permanent and fails it; so does a domain that has no
//     MX and no address, or publishes a null MX (RFC 7505);
//   - a 4xx reply, a refused or cut connection, a timeout, a DNS server
//     that does not answer, and a TLS handshake that fails are
//     temporary: the queue tries again on its schedule and gives up
//     after its give-up time.
//
// The MX hosts of a domain are tried in order of preference; the next is
// tried only when one could not be talked to at all (no connection, no
// greeting, no EHLO, 421). Once a host has answered a transaction, its
// answers stand for that attempt.
//
// # TLS
//
// STARTTLS (RFC 3207) is used whenever a host offers it. Unless
// Config.VerifyTLS is set the certificate is not checked: most MX hosts
// present names that do not match, and a refused message is worse than
// one sent over an unauthenticated channel. With VerifyTLS a bad
// certificate is a temporary failure of that host.
//
// # Signing
//
// A message whose From domain has a DKIM key (package dkim) is signed
// here, at each remote attempt, over the bytes the queue holds; the
// DKIM-Signature field is put in front and nothing else changes. Local
// deliveries are not signed.
//
// # DNS
//
// Names are resolved through Config.Resolver, a DNS server's HOST:PORT,
// or the system's resolver when it is empty.
package outbound

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/egretair/egret/mailcore/queue"
)

// Router is the queue's Transport: it hands each recipient to Local or
// Remote by its domain.
type Router struct {
	// IsLocal reports whether a domain's mail is stored on this
	// system.
	IsLocal func(domain string) bool
	// Local delivers to the store; an lmtp.Client.
	Local queue.Transport
	// Remote delivers to other domains; a *Remote.
	Remote queue.Transport
}

// Deliver splits the recipients between Local and Remote and answers one
// error per recipient; see queue.Transport.
func (r *Router) Deliver(ctx context.Context, d queue.Delivery, body io.Reader) []error {
	var local, remote []int
	for i, to := range d.Recipients {
		if r.IsLocal(domainOf(to)) {
			local = append(local, i)
		} else {
			remote = append(remote, i)
		}
	}
	switch {
	case len(remote) == 0:
		return r.Local.Deliver(ctx, d, body)
	case len(local) == 0:
		return r.Remote.Deliver(ctx, d, body)
	}

	// Both kinds: each needs the message, so it is read once, and
	// checked whole, before either is tried.
	out := make([]error, len(d.Recipients))
	msg, err := io.ReadAll(body)
	if err != nil {
		for i := range out {
			out[i] = fmt.Errorf("outbound: message not read whole: %w", err)
		}
		return out
	}
	for _, part := range []struct {
		idx []int
		t   queue.Transport
	}{{local, r.Local}, {remote, r.Remote}} {
		sub := d
		sub.Recipients = nil
		for _, i := range part.idx {
			sub.Recipients = append(sub.Recipients, d.Recipients[i])
		}
		got := part.t.Deliver(ctx, sub, bytes.NewReader(msg))
		for k, i := range part.idx {
			if k < len(got) {
				out[i] = got[k]
			} else {
				out[i] = fmt.Errorf("outbound: no answer for %s", d.Recipients[i])
			}
		}
	}
	return out
}

// domainOf answers the lower-case domain of an address.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}
