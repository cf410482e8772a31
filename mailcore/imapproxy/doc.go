// Package imapproxy is a front node's IMAP server: it signs clients in
// against the directory and relays their sessions to the back node that
// holds their mailboxes.
//
// Before sign-in the proxy speaks IMAP itself: the greeting, CAPABILITY,
// NOOP, LOGOUT, STARTTLS, LOGIN and AUTHENTICATE PLAIN, with the same
// capabilities a single node's imapd shows, so a client cannot tell the
// two apart. TLS ends here. A password is taken over TLS or from
// loopback only, and is checked through mailcore.Authenticate with the
// guard, as imapd does.
//
// Tokens. When the accounts given to New implement
// mailcore.TokenAuthenticator (egret's do on a node with the OpenID
// Connect provider), AUTHENTICATE OAUTHBEARER (RFC 7628) and XOAUTH2 are
// offered and run as on imapd: only where a password would be taken,
// with package oauthsasl's exchange (a refused token gets the JSON error
// challenge, and NO after the client's dummy response), and through
// mailcore.AuthenticateToken with the guard. The token is checked here;
// the back sees the proxy login below, as for a password.
//
// Sign-in. Once the password or token is right, Config.HomeOf names
// the account's back node and Config.Breakers says whether it may be
// called. The proxy connects to it and signs in with AUTHENTICATE
// PLAIN, the account's address as authorization identity and the
// fronts' proxy identity and shared secret as credentials
// (imapd.ProxyLogin). The client's command is then answered OK with the
// back's own capability list, and from there on bytes are copied both
// ways unchanged, IDLE included, until either side closes.
//
// Failure semantics. A back whose breaker is open, that cannot be
// reached, or that does not take the proxy login gets the client NO
// [UNAVAILABLE], a temporary error: clients try again later, and the
// connection stays open for that. Whether the back could be reached is
// reported to the breaker; a refused proxy login is a configuration
// error, logged at error level, not a sign of an unwell back.
//
// Not yet: the back sees the front's address, not the client's, in its
// logs.
package imapproxy
