package imapproxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/oauthsasl"
)

// Limits of the pre-auth phase.
const (
	maxLine          = 8 << 10
	maxLiteral       = 4 << 10
	preAuthTimeout   = 5 * time.Minute
	handshakeTimeout = 30 * time.Second
	// DefaultDialTimeout bounds connecting to a back and reading its
	// greeting: a back that is alive greets at once, and a hung one
	// (whose kernel still takes the connection) must not hold the
	// client's login long.
	DefaultDialTimeout = 3 * time.Second
	// signInTimeout bounds the back's reply to the proxy login, which
	// reads the directory and may load the account's index.
	signInTimeout = 10 * time.Second
)

// Breakers is what the proxy asks before calling a back node and tells
// after; mailcore/peer's Peers is one. Allow answers the name of the
// breaker the call goes through (for a back with a standby, the member
// routed to when the call starts); BackAddr is asked that name, and
// the outcome is reported under it.
type Breakers interface {
	Allow(peer string) (string, error)
	Report(breaker string, err error)
}

// Config is the proxy's configuration.
type Config struct {
	// TLS, when not nil, enables STARTTLS.
	TLS *tls.Config
	// Guard, when not nil, slows and locks password guessing.
	Guard mailcore.LoginGuard
	// HomeOf answers the name of the back node that holds an
	// account's mailboxes.
	HomeOf func(accountID string) string
	// BackAddr answers a back node's IMAP address, HOST:PORT, by the
	// name Breakers.Allow answered for it, or by its own name without
	// Breakers.
	BackAddr func(peer string) (string, bool)
	// Breakers, when not nil, guards the calls to back nodes.
	Breakers Breakers
	// ProxyIdentity and ProxySecret sign clients in on a back (see
	// imapd.ProxyLogin).
	ProxyIdentity string
	ProxySecret   string
	// DialTimeout bounds reaching a back and its greeting; zero means
	// DefaultDialTimeout. The sign-in after it has ten seconds.
	DialTimeout time.Duration
}

// Server is an IMAP proxy. Make it with New.
type Server struct {
	cfg      Config
	accounts mailcore.Accounts
	// tokens is accounts when it takes access tokens, else nil.
	tokens mailcore.TokenAuthenticator
	log    *slog.Logger

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New makes a proxy; Serve starts it. When accounts also implements
// mailcore.TokenAuthenticator, clients may sign in with OAUTHBEARER and
// XOAUTH2 as well, as on imapd.
func New(cfg Config, accounts mailcore.Accounts, log *slog.Logger) *Server {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	tokens, _ := accounts.(mailcore.TokenAuthenticator)
	return &Server{cfg: cfg, accounts: accounts, tokens: tokens,
		log: log.With("service", "imap"), conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections on ln until Close, and answers nil then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("imapproxy: %w", err)
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		s.wg.Go(func() {
			defer s.untrack(c)
			(&session{srv: s, raw: c}).run()
		})
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops the listeners and cuts every session, relayed ones
// included; clients reconnect by themselves.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// preAuthCaps is the capability list before sign-in, as imapd shows
// it: go-imap's list for its capability set and the session's SASL
// mechanisms (the token ones where a token may be sent), then the
// extras imapd's conn adds (STARTTLS where it can be used, QUOTA).
func (ss *session) preAuthCaps() string {
	caps := "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN"
	if ss.srv.tokens != nil && ss.plaintextAllowed() {
		caps += " AUTH=" + oauthsasl.OAuthBearer + " AUTH=" + oauthsasl.XOAuth2
	}
	if ss.srv.cfg.TLS != nil && !ss.secure {
		caps += " STARTTLS"
	}
	return caps + " QUOTA QUOTA=RES-STORAGE"
}
