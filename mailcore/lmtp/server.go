// Package lmtp carries messages from the queue to the message store over
// LMTP (RFC 2033), even when one process plays both parts, so that front
// and back nodes can be split by configuration alone.
//
// # Server
//
// The server stands in front of the store and listens on a unix socket
// in the data folder or on a loopback address; it is not for the public
// network and offers no AUTH. Each recipient is checked at RCPT against
// the directory: an address no enabled account has is refused with 550
// 5.1.1, a directory that cannot answer gives 451 4.3.0. After DATA the
// server answers once per accepted recipient (RFC 2033 §4.2): 250 only
// when the store has the message synced in that account's INBOX, 451
// 4.3.0 when the store failed for it. A message cut short gets no 250.
//
// # Quota
//
// An account's quota (mailcore.Account.QuotaBytes, zero for none) is
// checked when the message is stored, recipient by recipient. A message
// that would take the account past its quota gets 452 4.2.2 (RFC 3463
// §3.3, mailbox full): temporary, so the queue keeps it and tries again
// after the user has made room. A message larger than the whole quota
// gets 552 5.2.2 (RFC 5321 §4.2.2, storage allocation exceeded), which
// is permanent: no expunge makes it fit.
//
// # Queue id
//
// The client passes the queue id as the ENVID parameter of MAIL (RFC
// 3461 §4.4), which the server advertises through DSN. The server hands
// it to the store as the delivery id, and the store drops a second
// delivery with the same id: a message the queue delivers again after a
// crash, between the store's sync and the queue's record, is stored
// once. The public SMTP server never passes a client's ENVID on; it
// makes its own queue ids. A missing or malformed ENVID is not refused:
// the message is stored under a fresh id, without dedupe.
//
// # Client
//
// Client is the queue's Transport: one connection per attempt, the
// replies mapped per recipient. A 5xx reply is permanent; anything else
// (a refused connection, a timeout, a 4xx, a lost answer) is temporary
// and retried by the queue. When the message cannot be read to its end
// the client drops the connection before the final dot, so the server
// stores nothing.
package lmtp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/store"
)

// Config is the LMTP server's configuration.
type Config struct {
	// Hostname is the name in the greeting.
	Hostname string
	// MaxMessageBytes limits a message's size; zero means 64 MB.
	MaxMessageBytes int64
	// LookupTimeout bounds one directory lookup; zero means 10
	// seconds.
	LookupTimeout time.Duration
}

// Server is an LMTP server delivering into a store.
type Server struct {
	cfg      Config
	accounts mailcore.Accounts
	store    *store.Store
	log      *slog.Logger
	srv      *smtp.Server
}

// Replies of the server besides go-smtp's own.
var (
	errNoMailbox = &smtp.SMTPError{
		Code:         550,
		EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message:      "No such mailbox",
	}
	errTempLookup = &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary failure looking up the recipient",
	}
	errTempStore = &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary failure storing the message",
	}
	errOverQuota = &smtp.SMTPError{
		Code:         452,
		EnhancedCode: smtp.EnhancedCode{4, 2, 2},
		Message:      "Mailbox full, try again later",
	}
	errTooBigForQuota = &smtp.SMTPError{
		Code:         552,
		EnhancedCode: smtp.EnhancedCode{5, 2, 2},
		Message:      "Message larger than the mailbox's quota",
	}
)

// NewServer makes a server; Serve starts it.
func NewServer(cfg Config, accounts mailcore.Accounts, st *store.Store, log *slog.Logger) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
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
	s := &Server{cfg: cfg, accounts: accounts, store: st, log: log.With("service", "lmtp")}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.LMTP = true
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxLineLength = 1 << 20
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ReadTimeout = 10 * time.Minute
	srv.WriteTimeout = 10 * time.Minute
	srv.ErrorLog = mailcore.ServerLog{Log: s.log, Service: "lmtp"}
	s.srv = srv
	return s
}

// Serve accepts connections on ln until Close. It answers nil after a
// Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops the server and cuts its connections. A transaction cut
// this way gets no 250, and the queue tries it again.
func (s *Server) Close() error {
	err := s.srv.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// session is one LMTP connection's transaction.
type session struct {
	srv   *Server
	qid   string
	size  int64 // as declared with SIZE, or zero
	rcpts []rcpt
}

// rcpt is an accepted recipient: the address as given, its account
// and the account's quota.
type rcpt struct {
	to      string
	account string
	quota   int64
}

func (s *Server) newSession(*smtp.Conn) (smtp.Session, error) {
	return &session{srv: s}, nil
}

// Mail starts a transaction and takes the queue id from ENVID.
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	sess.qid, sess.size, sess.rcpts = "", 0, nil
	if opts != nil && validQueueID(opts.EnvelopeID) {
		sess.qid = opts.EnvelopeID
	}
	if opts != nil {
		sess.size = opts.Size
	}
	return nil
}

// Rcpt resolves one recipient to its account.
func (sess *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := sess.srv
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LookupTimeout)
	defer cancel()
	acct, err := s.accounts.LookupAddress(ctx, to)
	switch {
	case errors.Is(err, mailcore.ErrNoAccount):
		return errNoMailbox
	case err != nil:
		s.log.Warn("recipient lookup failed", "queue_id", sess.qid, "rcpt", to, "err", err)
		return errTempLookup
	}
	// RFC 1870 §6.3: a declared size above the whole quota cannot be
	// stored, now or later.
	if acct.QuotaBytes > 0 && sess.size > acct.QuotaBytes {
		s.log.Info("delivery refused: message larger than quota",
			"queue_id", sess.qid, "account", acct.ID)
		return errTooBigForQuota
	}
	sess.rcpts = append(sess.rcpts, rcpt{to: to, account: acct.ID,
		quota: acct.QuotaBytes})
	return nil
}

// Data is the single-status form; go-smtp calls LMTPData instead.
func (sess *session) Data(r io.Reader) error {
	var first error
	sess.LMTPData(r, statusFunc(func(_ string, err error) {
		if first == nil {
			first = err
		}
	}))
	return first
}

// statusFunc adapts a function to smtp.StatusCollector.
type statusFunc func(string, error)

func (f statusFunc) SetStatus(to string, err error) { f(to, err) }

// LMTPData stores the message once for all accepted accounts and
// answers each recipient: 250 for an account whose copy is synced
// (a duplicate of an earlier delivery counts), 452 or 552 for one over
// its quota, 451 for the others.
func (sess *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	s := sess.srv
	var ids []string
	var to []store.Recipient
	for _, rc := range sess.rcpts {
		if !slices.Contains(ids, rc.account) {
			ids = append(ids, rc.account)
			to = append(to, store.Recipient{AccountID: rc.account,
				QuotaBytes: rc.quota})
		}
	}
	res, err := s.store.DeliverTo(context.Background(), sess.qid, to, r)
	answer := make(map[string]error, len(res))
	for _, d := range res {
		switch {
		case d.Err == nil:
			answer[d.AccountID] = nil
		case errors.Is(d.Err, store.ErrTooBigForQuota):
			s.log.Info("delivery refused: message larger than quota",
				"queue_id", sess.qid, "account", d.AccountID)
			answer[d.AccountID] = errTooBigForQuota
		default:
			s.log.Info("delivery deferred: mailbox full",
				"queue_id", sess.qid, "account", d.AccountID)
			answer[d.AccountID] = errOverQuota
		}
	}
	if err != nil {
		s.log.Error("store delivery failed", "queue_id", sess.qid,
			"accounts", ids, "stored", len(res), "err", err)
	}
	for _, rc := range sess.rcpts {
		if reply, done := answer[rc.account]; done {
			status.SetStatus(rc.to, reply)
		} else {
			status.SetStatus(rc.to, errTempStore)
		}
	}
	return nil
}

// Reset ends a transaction.
func (sess *session) Reset() { sess.qid, sess.size, sess.rcpts = "", 0, nil }

// Logout ends the connection.
func (sess *session) Logout() error { return nil }

// validQueueID reports whether id looks like a queue id: 1 to 64
// letters, digits and '-'.
func validQueueID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.Trim(id, "abcdefghijklmnopqrstuvwxyz"+
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
}
