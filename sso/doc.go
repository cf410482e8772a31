// Package sso signs people in to egret's web mailbox from the OA portal:
// one-time login tokens the OA asks for over the API, preauth links the
// OA computes itself with a shared key, and the web sessions both lead
// to.
//
// # Security contract
//
//   - A login token is 32 random bytes, shown once (base64url) and
//     stored only as its SHA-256 digest. It is redeemed by one atomic
//     UPDATE that sets used_at where used_at is NULL and expires_at is
//     in the future, so two processes racing for one token cannot both
//     win. A token for an account that is disabled by the time it is
//     redeemed is refused.
//   - Every refusal (unknown, used, expired, tampered, disabled) is the
//     single error ErrInvalidLink: a caller learns nothing about which.
//   - A return path is a path inside the web mailbox (/mail/...), never
//     a scheme, a host, "//" or a backslash: no open redirect.
//   - A preauth link is accepted once: its MAC is recorded until the
//     link expires, and a second use is refused across processes by the
//     table's primary key.
//   - A session id is 32 random bytes in an HttpOnly cookie, stored as
//     its SHA-256 digest; its CSRF token is an HMAC keyed by the session
//     id, so it is bound to the session and needs no storage.
//
// # Preauth links
//
// The OA signs a link without calling egret. `egret sso key --domain D`
// prints the key of mail domain D: 64 hexadecimal characters. The key
// is used as printed, its ASCII characters being the HMAC key (it is
// not hex-decoded). The canonical string is four lines joined by "\n"
// (no trailing newline):
//
//	egret-preauth-v1
//	<address>     the account's mail address, lower case
//	<ts>          Unix time in seconds when the link was made
//	<exp>         Unix time in seconds when the link stops working
//
// and the MAC is HMAC-SHA256 (RFC 2104) of that string under the key,
// written as 64 lower-case hexadecimal characters. The link is
//
//	<web URL>/mail/preauth?account=<address>&ts=<ts>&exp=<exp>&mac=<mac>
//
// with each value percent-encoded (RFC 3986 §2.1). egret refuses a link
// whose ts is more than five minutes from its own clock, whose exp has
// passed or is not after ts, that lives longer than ten minutes, whose
// MAC matches no live key of the address's domain, or that was used
// before. After `egret sso key --rotate` the previous key stays valid
// for the grace period (sso.key_grace), so the OA can switch over.
//
// # Link scanners
//
// Mail and chat security gateways fetch every link they see. A GET of a
// login or preauth link therefore only answers a small page whose form
// POSTs the link back (sent at once by script, or by a button without
// it); only the POST redeems. HEAD changes nothing.
package sso
