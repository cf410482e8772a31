// Package submission is the message submission agent (RFC 6409): the
// SMTP service on which users' mail clients hand in the mail they send,
// to this domain or any other, after signing in.
//
// # Contract
//
// Two listeners share one server: Serve for port 587, where a client
// starts TLS with STARTTLS (RFC 3207), and ServeTLS for port 465, TLS
// from the first byte (RFC 8314 §3.3). AUTH PLAIN (RFC 4616) and LOGIN
// are offered once the session is under TLS, or from a loopback peer, as
// imapd does; elsewhere AUTH is neither advertised nor taken. Where the
// accounts take access tokens (mailcore.TokenAuthenticator), AUTH
// OAUTHBEARER (RFC 7628) and XOAUTH2 are offered beside them, on the
// same terms; a refused token gets RFC 7628's JSON error challenge,
// then, after the client's dummy response, 535 5.7.8.
//
// Passwords and tokens alike go through Config.Guard when it is set
// (mailcore.Guarded): failures per user and per client address are
// delayed more and more, and past a limit locked out for a while. A
// locked-out sign-in gets 535 5.7.8 as a wrong password does, even
// with the right credential.
//
// Nothing is relayed without a sign-in: MAIL before AUTH gets 530
// 5.7.0. A signed-in user may send only as their own address or one of
// their aliases (mailcore.Senders): MAIL FROM and every address of the
// From and Sender fields are checked, and any other is refused with 553
// 5.7.1.
//
// Errors per step:
//
//   - a wrong name, password or token gets 535 5.7.8; a directory that
//     cannot answer gets 454 4.7.0, and the client may try again;
//   - a recipient of the local domain that no account has gets 550
//     5.1.1 at RCPT; other domains are accepted and checked by their
//     MX when the queue delivers (a failure then comes back as a
//     delivery status notification, package dsn);
//   - more than Config.MaxRecipients recipients get 452 4.5.3, and more
//     than Config.MessagesPerHour messages in the last hour get 450
//     4.7.1 at MAIL: the client tries again later;
//   - a queue that cannot take the message gets 451 4.3.0 and nothing
//     of it is sent.
//
// At the end of DATA a Received field naming the signed-in protocol
// (RFC 3848) is put in front, a Date and a Message-ID are added when the
// message lacks them (RFC 6409 §8.2, §8.3), bare LF becomes CRLF, and
// the message is written into the queue; 250 is answered only once the
// queue has it synced. The queue then delivers it (package outbound).
package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/queue"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxMessageBytes = 50 << 20
	DefaultMaxRecipients   = 100
	DefaultMessagesPerHour = 300
)

// Config is the submission server's configuration.
type Config struct {
	// Domain is the local mail domain: its recipients are checked
	// against the directory at RCPT.
	Domain string
	// Hostname names this server in the greeting and Received.
	Hostname string
	// TLS is needed for STARTTLS and for ServeTLS.
	TLS *tls.Config
	// MaxMessageBytes limits a message's size; zero means 50 MB.
	MaxMessageBytes int64
	// MaxRecipients limits recipients per message; zero means 100.
	MaxRecipients int
	// MessagesPerHour limits the messages one account sends in any
	// hour; zero means 300, a negative value no limit.
	MessagesPerHour int
	// LookupTimeout bounds one directory call; zero means 10 seconds.
	LookupTimeout time.Duration
	// Guard, when not nil, slows and locks password and token
	// guessing.
	Guard mailcore.LoginGuard
	// Now answers the time; nil means time.Now.
	Now func() time.Time
}

// Queue takes submitted messages; *queue.Queue is one.
type Queue interface {
	// Enqueue answers once the message is durable.
	Enqueue(ctx context.Context, env queue.Envelope, r io.Reader) (queue.Record, error)
}

// Server is a submission server writing into a queue.
type Server struct {
	cfg      Config
	accounts mailcore.Accounts
	queue    Queue
	log      *slog.Logger
	srv      *smtp.Server
	limit    *limiter

	mu     sync.Mutex
	closed bool
}

// New makes a server; Serve and ServeTLS start it.
func New(cfg Config, accounts mailcore.Accounts, q Queue, log *slog.Logger) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.MessagesPerHour == 0 {
		cfg.MessagesPerHour = DefaultMessagesPerHour
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = 10 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		accounts: accounts,
		queue:    q,
		log:      log.With("service", "submission"),
		limit:    newLimiter(cfg.MessagesPerHour, time.Hour, cfg.Now),
	}
	s.srv = mailcore.NewSMTPServer(smtp.BackendFunc(s.newSession), mailcore.SMTPLimits{
		Hostname: cfg.Hostname, MaxMessageBytes: cfg.MaxMessageBytes,
		MaxRecipients: cfg.MaxRecipients, TLS: cfg.TLS}, s.log, "submission")
	// Whether AUTH may be used is decided per connection
	// (authAllowed); go-smtp only knows all or nothing.
	s.srv.AllowInsecureAuth = true
	return s
}

// Serve accepts connections that may start TLS with STARTTLS (port
// 587), until Close. It answers nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	return mailcore.ServeSMTP(s.srv.Serve, ln)
}

// ServeTLS accepts connections that are TLS from the start (port 465).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.TLS == nil {
		ln.Close()
		return errors.New("submission: implicit TLS without a TLS configuration")
	}
	return s.Serve(tls.NewListener(ln, s.cfg.TLS))
}

// Shutdown stops accepting connections and waits for those open to end
// until ctx ends, then cuts them. A message is only ever acknowledged
// once queued, so a cut one is sent again by its client.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if ctx.Err() != nil {
		s.srv.Close()
		return ctx.Err()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// authAllowed reports whether a password may be sent on conn: under TLS,
// or from this host, whose traffic does not leave the machine.
func authAllowed(conn net.Conn) bool {
	if _, ok := conn.(*tls.Conn); ok {
		return true
	}
	addr, ok := conn.RemoteAddr().(*net.TCPAddr)
	return ok && addr.IP.IsLoopback()
}
