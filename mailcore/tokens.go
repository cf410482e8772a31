package mailcore

import "context"

// TokenAuthenticator is what an Accounts may implement besides, to let
// clients sign in with an OAuth 2.0 access token (the OAUTHBEARER
// mechanism of RFC 7628, and XOAUTH2). Without it, neither mechanism is
// offered.
type TokenAuthenticator interface {
	// AuthenticateToken checks an access token and answers the enabled
	// account it was issued for. user is the name the client gave,
	// empty when it gave none; when given, it must name the token's
	// account. A token that does not verify, or names another user,
	// gets ErrBadCredentials; any other error is temporary.
	AuthenticateToken(ctx context.Context, user, token string) (Account, error)
}
