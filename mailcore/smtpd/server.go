// Package smtpd receives mail for the accounts of the configured mail
// domain over SMTP (RFC 5321) and writes it into the delivery queue.
//
// # Contract
//
// Recipients are checked at RCPT time, each on its own:
//
//   - an address on another domain is refused with 550 5.7.1: this
//     server relays nothing;
//   - an address no enabled account has is refused with 550 5.1.1;
//   - a directory that cannot answer gives 451 4.3.0, and the client
//     tries again later;
//   - a mailbox at its quota gives 452 4.2.2, and a size declared with
//     SIZE above the whole quota 552 5.2.2;
//   - a list address (when the directory implements mailcore.Lists) is
//     expanded there and then into one recipient per member with an
//     enabled account, so the queue holds the members as they were when
//     the message was accepted; a sender the list's posting policy does
//     not admit gets 550 5.7.1 naming the policy. A list never reaches a
//     member twice. A message from a list to itself, or one that carries
//     an X-Loop field naming a list it is sent to, is refused with 550
//     5.4.6; every message through a list gets X-Loop with its address.
//
// At the end of DATA the message is given a queue id, a Return-Path and a
// Received header are put in front of it (RFC 5321 §4.4), bare LF line
// ends become CRLF, and nothing else is changed: a client reading it back
// over IMAP gets the bytes it sent after those two fields. The message is
// written into the queue, synced, and only then is 250 answered; the
// queue then delivers it to each recipient's INBOX (package queue says
// how, and what is retried). When the queue cannot take the message the
// whole message gets 451 4.3.0 and nothing of it is delivered.
//
// The queue id is made here, never taken from the client: it is what
// the store drops duplicates by.
//
// The server advertises 8BITMIME, SMTPUTF8, SIZE and, given a TLS
// configuration, STARTTLS. It offers no AUTH: this is the MX side only.
//
// # Use
//
//	srv := smtpd.New(smtpd.Config{Domain: "egretair.example",
//		Hostname: "mx1.egretair.example"}, accounts, q, log)
//	go srv.Serve(ln)
//	...
//	err := srv.Shutdown(ctx) // finishes transactions in flight
package smtpd

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
)

// Config is the SMTP server's configuration.
type Config struct {
	// Domain is the mail domain whose addresses are accepted.
	Domain string
	// Hostname is this server's name, in the greeting and in the
	// Received header.
	Hostname string
	// MaxMessageBytes limits a message's size; zero means 50 MB.
	MaxMessageBytes int64
	// MaxRecipients limits recipients per message; zero means 100.
	MaxRecipients int
	// TLS, when not nil, enables STARTTLS.
	TLS *tls.Config
	// LookupTimeout bounds one directory lookup; zero means 10 seconds.
	LookupTimeout time.Duration
	// Usage, when not nil, answers how many bytes an account's
	// mailboxes hold, so that a full mailbox is refused at RCPT. A node
	// without the store leaves it nil, and delivery decides.
	Usage func(ctx context.Context, accountID string) (int64, error)
}

// Queue takes accepted messages; *queue.Queue is one.
type Queue interface {
	// Enqueue answers once the message is durable. Errors from r
	// are answered wrapped.
	Enqueue(ctx context.Context, env queue.Envelope, r io.Reader) (queue.Record, error)
}

// Server is an SMTP server writing into a queue.
type Server struct {
	cfg      Config
	accounts mailcore.Accounts
	queue    Queue
	log      *slog.Logger
	srv      *smtp.Server

	mu       sync.Mutex
	sessions map[*session]struct{}
	draining bool
}

// New makes a server; Serve starts it.
func New(cfg Config, accounts mailcore.Accounts, q Queue, log *slog.Logger) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = 10 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		accounts: accounts,
		queue:    q,
		log:      log.With("service", "smtp"),
		sessions: make(map[*session]struct{}),
	}

	s.srv = mailcore.NewSMTPServer(smtp.BackendFunc(s.newSession), mailcore.SMTPLimits{
		Hostname: cfg.Hostname, MaxMessageBytes: cfg.MaxMessageBytes,
		MaxRecipients: cfg.MaxRecipients, TLS: cfg.TLS}, s.log, "smtp")
	return s
}

// Serve accepts connections on ln until Shutdown. It answers nil after a
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return mailcore.ServeSMTP(s.srv.Serve, ln)
}

// Shutdown stops accepting connections, closes connections that are
// between transactions, and waits for transactions in flight to finish
// (each connection is closed after its reply). When ctx ends first, the
// remaining connections are cut and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	var idle []*session
	for sess := range s.sessions {
		if !sess.inTx {
			idle = append(idle, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range idle {
		if nc := sess.conn.Conn(); nc != nil {
			nc.Close()
		}
	}

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
