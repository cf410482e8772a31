// Package web is egret's web mailbox: a small server-rendered mail
// reader under /mail/ that the OA portal's login links land in, and
// that a person can also sign in to with the directory password.
//
// Routes (every page works without JavaScript):
//
//	GET  /mail/              folder list and a page of messages (?box=, ?page=)
//	GET  /mail/read          one message (?box=, ?uid=, ?remote=1 for images)
//	GET  /mail/part          one attachment, as a download (?box=, ?uid=, ?n=)
//	POST /mail/flag          mark read (seen=1) or unread, from the list or a message
//	POST /mail/logout        end the session
//	GET  /mail/login         password form; POST signs in
//	GET  /mail/sso           login-token page; POST redeems (?t=)
//	GET  /mail/preauth       preauth-link page; POST redeems
//
// # Security contract
//
//   - GET and HEAD never redeem a token or link, nor start a session:
//     link scanners that fetch every URL use nothing up.
//   - The session cookie is HttpOnly and SameSite=Lax, Secure (named
//     __Host-egret_session) when Server.Secure is set; only on a
//     loopback HTTP listener may it be sent in the clear.
//   - Every POST after sign-in carries the session's CSRF token; the
//     sign-in forms carry a pre-session token matched against a
//     SameSite cookie, so another site cannot sign a browser in.
//   - Message HTML passes an allowlist sanitiser (bluemonday): no
//     script, style, form or frame, no on* handler, no URL but http,
//     https and mailto; images only when the reader asks. It is shown
//     in an iframe sandboxed without allow-scripts or allow-same-origin,
//     and every page carries a Content-Security-Policy that forbids
//     script (but a nonce on the sign-in hand-off page) and remote
//     images, so a sanitiser gap still runs nothing and loads nothing.
//   - Attachments are sent as application/octet-stream with
//     Content-Disposition: attachment (RFC 6266) and nosniff, so none
//     is ever rendered in egret's origin.
//   - A failed password sign-in answers the same words, after the
//     same work, for an unknown user, a wrong password and a locked
//     account.
package web
