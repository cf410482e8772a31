package imapd

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/oauthsasl"
)

// AUTHENTICATE: PLAIN always, and OAUTHBEARER (RFC 7628) and XOAUTH2
// when the accounts take tokens (mailcore.TokenAuthenticator). A token
// is a credential as a password is: it is taken only where a password
// would be (plaintextAllowed), and the mechanisms are advertised only
// there. A refused token counts with the guard as a wrong password does,
// and a locked-out user or address is refused whatever the token.

var _ imapserver.SessionSASL = (*session)(nil)

// AuthenticateMechanisms answers the SASL mechanisms offered on this
// connection.
func (sess *session) AuthenticateMechanisms() []string {
	mechs := []string{sasl.Plain}
	if _, ok := sess.srv.accounts.(mailcore.TokenAuthenticator); ok &&
		plaintextAllowed(sess.conn.NetConn()) {
		mechs = append(mechs, oauthsasl.OAuthBearer, oauthsasl.XOAuth2)
	}
	return mechs
}

// Authenticate starts a SASL exchange.
func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user && sess.srv.cfg.Proxy != nil {
				return sess.proxyLogin(identity, user, pass)
			}
			if identity != "" && identity != user {
				return &imap.Error{Type: imap.StatusResponseTypeNo,
					Code: imap.ResponseCodeAuthorizationFailed,
					Text: "SASL identity not supported"}
			}
			return sess.Login(user, pass)
		}), nil
	case oauthsasl.OAuthBearer, oauthsasl.XOAuth2:
		tokens, ok := sess.srv.accounts.(mailcore.TokenAuthenticator)
		if !ok {
			break
		}
		if !plaintextAllowed(sess.conn.NetConn()) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo,
				Code: imap.ResponseCodePrivacyRequired,
				Text: "Use STARTTLS before sending a token"}
		}
		return oauthsasl.New(mech, func(user, token string) error {
			return sess.tokenLogin(tokens, user, token)
		}, imapserver.ErrAuthFailed), nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo,
		Text: "SASL mechanism not supported"}
}

// tokenLogin signs the session in with an access token.
func (sess *session) tokenLogin(tokens mailcore.TokenAuthenticator, user, token string) error {
	s := sess.srv
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	acct, err := mailcore.AuthenticateToken(ctx, s.cfg.Guard, tokens, user, token, sess.remote())
	switch {
	case errors.Is(err, mailcore.ErrBadCredentials):
		s.log.Info("token login failed", "user", user, "remote", sess.remote())
		return oauthsasl.ErrRefused
	case err != nil:
		s.log.Warn("token login not checked: directory unavailable", "user", user, "err", err)
		return unavailable("Directory unavailable, try again later")
	}
	if err := s.store.EnsureAccount(ctx, acct.ID); err != nil {
		s.log.Error("mail folder not ready", "account", acct.ID, "err", err)
		return unavailable("Mailbox unavailable, try again later")
	}
	sess.acct = &acct
	s.log.Debug("logged in with token", "account", acct.ID, "remote", sess.remote())
	return nil
}
