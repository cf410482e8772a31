package imapd

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/egretair/egret/mailcore"
)

// Proxy logins. On a back node, a front signs its clients in here with
// AUTHENTICATE PLAIN (RFC 4616) carrying three parts: the authorization
// identity is the account's primary address, the authentication
// identity is ProxyLogin.Identity, and the password is the cluster's
// shared secret. The front has already checked the user's own password;
// the back checks only that the caller is a front: its address is in
// Sources and it knows the secret. Anything else is refused as a wrong
// password is, and logged.
//
// Not yet: the front-to-back link is plain TCP, so the secret crosses
// the network in clear; Sources should name a private network only.

// ProxyLogin lets front nodes sign their clients in.
type ProxyLogin struct {
	// Identity is the authentication identity fronts use.
	Identity string
	// Secret is the password they use with it.
	Secret string
	// Sources are the networks fronts connect from.
	Sources []netip.Prefix
}

// fromSource reports whether addr lies in one of the sources.
func (p *ProxyLogin) fromSource(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range p.Sources {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// proxyLogin signs the session in as the account whose address is
// user, for a front that authenticated as identity with secret.
func (sess *session) proxyLogin(user, identity, secret string) error {
	s := sess.srv
	p := s.cfg.Proxy
	remote := sess.conn.NetConn().RemoteAddr()
	if c, ok := sess.conn.NetConn().(*conn); ok {
		remote = c.raw.RemoteAddr()
	}
	okID := subtle.ConstantTimeCompare([]byte(identity), []byte(p.Identity)) == 1
	okSecret := subtle.ConstantTimeCompare([]byte(secret), []byte(p.Secret)) == 1
	if p.Identity == "" || p.Secret == "" || !okID || !okSecret || !p.fromSource(remote) {
		s.log.Warn("proxy login refused", "user", user, "identity", identity,
			"remote", remote.String())
		return imapserver.ErrAuthFailed
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	acct, err := s.accounts.LookupAddress(ctx, user)
	switch {
	case errors.Is(err, mailcore.ErrNoAccount):
		s.log.Info("proxy login for no account", "user", user, "remote", remote.String())
		return imapserver.ErrAuthFailed
	case err != nil:
		s.log.Warn("proxy login not checked: directory unavailable", "user", user, "err", err)
		return unavailable("Directory unavailable, try again later")
	}
	if err := s.store.EnsureAccount(ctx, acct.ID); err != nil {
		s.log.Error("mail folder not ready", "account", acct.ID, "err", err)
		return unavailable("Mailbox unavailable, try again later")
	}
	sess.acct = &acct
	s.log.Debug("logged in through a front", "account", acct.ID, "remote", remote.String())
	return nil
}
