package imapproxy

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"time"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/oauthsasl"
)

// AUTHENTICATE OAUTHBEARER (RFC 7628) and XOAUTH2, offered when the
// accounts take tokens, as imapd offers them: only where a password may
// be sent, with the exchange oauthsasl runs (the JSON error challenge
// and the client's dummy response before the NO), and through the
// guard. The token is checked here on the front; the back sees the
// proxy login, as for a password.

// Outcomes of a token check, as oauthsasl's Server answers them once
// the exchange is over.
var (
	errTokenRefused   = errors.New("imapproxy: token refused")
	errTokenUnchecked = errors.New("imapproxy: token not checked")
)

// authenticateToken runs AUTHENTICATE with mech, OAUTHBEARER or
// XOAUTH2; ir is the initial response, if hasIR.
func (ss *session) authenticateToken(tag, mech, ir string, hasIR bool) (net.Conn, error) {
	s := ss.srv
	remote := ss.raw.RemoteAddr().String()
	var resp []byte
	if hasIR {
		var ok bool
		if resp, ok = decodeSASL(ir); !ok {
			return nil, ss.write(tag + " BAD Malformed SASL response\r\n")
		}
	}
	if !ss.plaintextAllowed() {
		return nil, ss.write(tag + " NO [PRIVACYREQUIRED] Use STARTTLS before sending a token\r\n")
	}

	var acct mailcore.Account
	exchange := oauthsasl.New(mech, func(user, token string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		a, err := mailcore.AuthenticateToken(ctx, s.cfg.Guard, s.tokens, user, token, remote)
		switch {
		case errors.Is(err, mailcore.ErrBadCredentials):
			s.log.Info("token login failed", "user", user, "remote", remote)
			return oauthsasl.ErrRefused
		case err != nil:
			s.log.Warn("token login not checked: directory unavailable", "user", user, "err", err)
			return errTokenUnchecked
		}
		acct = a
		return nil
	}, errTokenRefused)
	for {
		challenge, done, err := exchange.Next(resp)
		switch {
		case errors.Is(err, errTokenRefused):
			return nil, ss.write(tag + " NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
		case errors.Is(err, errTokenUnchecked):
			return nil, ss.write(tag + " NO [UNAVAILABLE] Directory unavailable, try again later\r\n")
		case err != nil:
			return nil, ss.write(tag + " BAD Malformed SASL response\r\n")
		}
		if done {
			break
		}
		// As go-imap words a challenge: none for nil, "=" for an
		// empty one.
		text := ""
		if challenge != nil {
			text = "="
			if len(challenge) > 0 {
				text = base64.StdEncoding.EncodeToString(challenge)
			}
		}
		if err := ss.write("+ " + text + "\r\n"); err != nil {
			return nil, err
		}
		line, err := ss.readLine()
		if err != nil {
			return nil, err
		}
		if line == "*" {
			return nil, ss.write(tag + " BAD AUTHENTICATE cancelled\r\n")
		}
		var ok bool
		if resp, ok = decodeSASL(line); !ok {
			return nil, ss.write(tag + " BAD Malformed SASL response\r\n")
		}
	}
	return ss.enter(tag, acct, mech+" authentication successful")
}

// decodeSASL decodes a client's SASL response: base64, or "=" for an
// empty one. The answer is never nil, which oauthsasl would take for no
// response.
func decodeSASL(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	if b == nil {
		b = []byte{}
	}
	return b, true
}
