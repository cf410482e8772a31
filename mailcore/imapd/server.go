// Package imapd serves the message store over IMAP (IMAP4rev1, RFC 3501,
// and IMAP4rev2, RFC 9051) with go-imap's imapserver.
//
// Users sign in with LOGIN or AUTHENTICATE PLAIN, checked by the
// directory through mailcore.Accounts, or with an OAuth 2.0 access
// token through AUTHENTICATE OAUTHBEARER (RFC 7628) or XOAUTH2, offered
// only when the accounts implement mailcore.TokenAuthenticator (egret's
// tokens come from its OpenID Connect provider with the "mail" scope).
// A password or token is accepted only over TLS (STARTTLS, given a TLS
// configuration) or from a loopback peer; elsewhere it is refused with
// PRIVACYREQUIRED before the directory is asked. A refused token is
// answered with the JSON error challenge of RFC 7628 §3.2.2 and, after
// the client's dummy response, NO [AUTHENTICATIONFAILED]. A directory
// that cannot answer gives NO [UNAVAILABLE].
//
// Every sign-in, password or token, goes through Config.Guard when it
// is set (mailcore.Guarded): failures per user and per client address
// are delayed more and more, and past a limit locked out for a while;
// a locked-out sign-in gets the same NO as a wrong password, even with
// the right one.
//
// Each session that selects a mailbox watches it in the store, so a
// delivery, or a change made by another session, reaches the client as
// EXISTS, EXPUNGE or FETCH FLAGS at its next command or at once while it
// IDLEs. Message bodies are sent byte for byte as stored; whole messages
// are streamed from their files.
//
// Besides the base protocol the server offers UIDPLUS, MOVE, NAMESPACE,
// SPECIAL-USE, LIST-STATUS, STATUS=SIZE, ESEARCH, IDLE, UNSELECT,
// LITERAL+, APPENDLIMIT, and QUOTA with QUOTA=RES-STORAGE (RFC 9208),
// which go-imap lacks and conn.go adds: GETQUOTA and GETQUOTAROOT
// report the account's usage against its quota, one root for all its
// mailboxes; an APPEND or COPY that would exceed it gets NO
// [OVERQUOTA]. SETQUOTA is not offered: quotas are set in the
// directory.
//
// # Use
//
//	srv := imapd.New(imapd.Config{TLS: tlsCfg}, accounts, st, log)
//	go srv.Serve(ln)
//	...
//	err := srv.Close()
package imapd

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	// Decoding of legacy charsets (GBK, Big5, ...) in headers and
	// bodies, for SEARCH and ENVELOPE.
	_ "github.com/emersion/go-message/charset"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/store"
)

// DefaultAppendLimit is the largest message APPEND takes, as the SMTP
// server's default.
const DefaultAppendLimit = 50 << 20

// Config is the IMAP server's configuration.
type Config struct {
	// TLS, when not nil, enables STARTTLS.
	TLS *tls.Config
	// AppendLimit caps an APPENDed message; zero means 50 MB.
	AppendLimit uint32
	// Guard, when not nil, slows and locks password and token
	// guessing.
	Guard mailcore.LoginGuard
	// Proxy, when not nil, lets front nodes sign their clients in
	// (see proxy.go).
	Proxy *ProxyLogin
}

// Server is an IMAP server over a store.
type Server struct {
	cfg      Config
	accounts mailcore.Accounts
	store    *store.Store
	log      *slog.Logger
	srv      *imapserver.Server
}

// New makes a server; Serve starts it.
func New(cfg Config, accounts mailcore.Accounts, st *store.Store, log *slog.Logger) *Server {
	if cfg.AppendLimit == 0 {
		cfg.AppendLimit = DefaultAppendLimit
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		accounts: accounts,
		store:    st,
		log:      log.With("service", "imap"),
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:   {},
			imap.CapIMAP4rev2:   {},
			imap.CapNamespace:   {},
			imap.CapUIDPlus:     {},
			imap.CapMove:        {},
			imap.CapSpecialUse:  {},
			imap.CapListStatus:  {},
			imap.CapStatusSize:  {},
			imap.CapESearch:     {},
			imap.CapLiteralPlus: {},
			imap.CapChildren:    {},
		},
		Logger: mailcore.ServerLog{Log: s.log, Service: "imap"},
		// STARTTLS is run below imapserver, by conn, so that the
		// quota commands it answers work over TLS too.
		TLSConfig: nil,
		// Whether a password may be sent is decided per connection in
		// Login (plaintextAllowed): go-imap only knows all or nothing.
		InsecureAuth: true,
	})
	return s
}

// Serve accepts connections on ln until Close. It answers nil after
// Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(listener{Listener: ln, srv: s})
	if err != nil && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops the listeners and cuts every connection. IMAP clients
// reconnect by themselves; nothing a client was told is done is lost,
// since every change is on disk before the reply.
func (s *Server) Close() error {
	return s.srv.Close()
}

// plaintextAllowed reports whether a password may be sent on conn: over
// TLS, or from this host (RFC 9051 §11.1 leaves the policy to the
// server; loopback traffic does not leave the machine).
func plaintextAllowed(nc net.Conn) bool {
	if _, ok := nc.(*tls.Conn); ok {
		return true
	}
	if c, ok := nc.(*conn); ok {
		if c.secure.Load() {
			return true
		}
		nc = c.raw
	}
	addr, ok := nc.RemoteAddr().(*net.TCPAddr)
	if !ok {
		// A Unix socket is local too.
		_, unix := nc.RemoteAddr().(*net.UnixAddr)
		return unix
	}
	return addr.IP.IsLoopback()
}
