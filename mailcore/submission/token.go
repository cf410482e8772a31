package submission

import (
	"context"
	"errors"

	"github.com/emersion/go-sasl"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/oauthsasl"
)

// tokenMechanisms answers OAUTHBEARER (RFC 7628) and XOAUTH2 when the
// accounts take access tokens; the caller has checked that credentials
// may be sent on the connection.
func (sess *session) tokenMechanisms() []string {
	if _, ok := sess.srv.accounts.(mailcore.TokenAuthenticator); !ok {
		return nil
	}
	return []string{oauthsasl.OAuthBearer, oauthsasl.XOAuth2}
}

// tokenAuth starts a token exchange, or answers nil when tokens are not
// taken. The token is checked through the guard, as a password is.
func (sess *session) tokenAuth(mech string) sasl.Server {
	tokens, ok := sess.srv.accounts.(mailcore.TokenAuthenticator)
	if !ok {
		return nil
	}
	return oauthsasl.New(mech, func(user, token string) error {
		s := sess.srv
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LookupTimeout)
		defer cancel()
		acct, err := mailcore.AuthenticateToken(ctx, s.cfg.Guard, tokens, user, token, sess.remote())
		switch {
		case errors.Is(err, mailcore.ErrBadCredentials):
			s.log.Info("token sign-in refused", "user", user, "remote", sess.remote())
			return oauthsasl.ErrRefused
		case err != nil:
			s.log.Warn("token sign-in not checked", "user", user, "err", err)
			return errTempAuth
		}
		sess.acct = acct
		return nil
	}, errBadCredentials)
}
