package smtpd

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/queue"
)

// Replies this server gives besides go-smtp's own.
var (
	errRelayDenied = &smtp.SMTPError{
		Code:         550,
		EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message:      "Relaying denied: this server accepts mail for its own domain only",
	}
	errNoMailbox = &smtp.SMTPError{
		Code:         550,
		EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message:      "No such mailbox",
	}
	errTempLookup = &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary failure looking up the recipient, try again later",
	}
	errTempQueue = &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary failure queueing the message, try again later",
	}
	errShuttingDown = &smtp.SMTPError{
		Code:         421,
		EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message:      "Server shutting down, try again later",
	}
	errBadAddress = &smtp.SMTPError{
		Code:         501,
		EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message:      "Bad recipient address syntax",
	}
	errLineTooLong = &smtp.SMTPError{
		Code:         552,
		EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message:      "A line of the message is too long",
	}
	errMailboxFull = &smtp.SMTPError{
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

// session is one SMTP connection's state.
type session struct {
	srv  *Server
	conn *smtp.Conn

	// inTx is set from MAIL until the transaction ends; the server's
	// lock guards it.
	inTx  bool
	from  string
	utf8  bool
	size  int64 // declared with SIZE, or zero
	rcpts []mailcore.Account
	// lists are the list addresses expanded in this transaction.
	lists []string
}

// newSession registers a connection, refused while shutting down.
func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, errShuttingDown
	}
	sess := &session{srv: s, conn: c}
	s.sessions[sess] = struct{}{}
	return sess, nil
}

// Mail starts a transaction.
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	s := sess.srv
	s.mu.Lock()
	draining := s.draining
	if !draining {
		sess.inTx = true
	}
	s.mu.Unlock()
	if draining {
		return errShuttingDown
	}
	// RFC 1870 §6.3: refuse early a message declared too big.
	if opts != nil && opts.Size > s.cfg.MaxMessageBytes {
		return smtp.ErrDataTooLarge
	}
	sess.from = from
	sess.utf8 = opts != nil && opts.UTF8
	sess.size = 0
	if opts != nil {
		sess.size = opts.Size
	}
	sess.rcpts, sess.lists = nil, nil
	return nil
}

// Rcpt checks one recipient against the domain and the directory.
func (sess *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s := sess.srv
	local, domain, ok := strings.Cut(to, "@")
	switch {
	// RFC 5321 §4.5.1: "postmaster" without a domain must be accepted.
	case !ok && strings.EqualFold(to, "postmaster"):
		to = "postmaster@" + s.cfg.Domain
	case !ok || local == "" || domain == "":
		return errBadAddress
	case !strings.EqualFold(domain, s.cfg.Domain):
		s.log.Debug("relay refused", "rcpt", to, "remote", sess.remote())
		return errRelayDenied
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LookupTimeout)
	defer cancel()
	acct, err := s.accounts.LookupAddress(ctx, to)
	if errors.Is(err, mailcore.ErrNoAccount) {
		if done, err := sess.rcptList(ctx, to); done {
			return err
		}
	}
	switch {
	case errors.Is(err, mailcore.ErrNoAccount):
		s.log.Debug("unknown recipient refused", "rcpt", to, "remote", sess.remote())
		return errNoMailbox
	case err != nil:
		s.log.Warn("recipient lookup failed", "rcpt", to, "err", err)
		return errTempLookup
	}
	if err := sess.checkQuota(ctx, acct); err != nil {
		return err
	}
	sess.add(acct)
	return nil
}

// add takes an account as a recipient; two addresses of one account, or
// a person reached directly and through a list, get one copy.
func (sess *session) add(acct mailcore.Account) {
	if !slices.ContainsFunc(sess.rcpts, func(a mailcore.Account) bool {
		return a.ID == acct.ID
	}) {
		sess.rcpts = append(sess.rcpts, acct)
	}
}

// checkQuota refuses at RCPT what the store would refuse later: a
// declared size above the whole quota, permanently (RFC 1870 §6.3), and
// an account already at its quota, temporarily. A message that fits
// here may still be deferred at delivery; the queue keeps it then.
func (sess *session) checkQuota(ctx context.Context, acct mailcore.Account) error {
	s := sess.srv
	q := acct.QuotaBytes
	if q <= 0 {
		return nil
	}
	if sess.size > q {
		s.log.Info("recipient refused: message larger than quota",
			"account", acct.ID, "remote", sess.remote())
		return errTooBigForQuota
	}
	if s.cfg.Usage == nil {
		return nil
	}
	used, err := s.cfg.Usage(ctx, acct.ID)
	if err != nil {
		// The queue and the store decide then.
		s.log.Warn("mailbox usage unknown", "account", acct.ID, "err", err)
		return nil
	}
	if used >= q {
		s.log.Info("recipient deferred: mailbox full", "account", acct.ID,
			"remote", sess.remote())
		return errMailboxFull
	}
	return nil
}

// Data queues the message for every recipient and answers only when it
// is on disk.
func (sess *session) Data(r io.Reader) error {
	s := sess.srv
	qid := newQueueID()
	trace := sess.traceHeaders(qid)
	body, err := sess.loopCheck(newCRLFReader(r))
	if err != nil {
		s.log.Info("message refused: list loop", "queue_id", qid,
			"lists", sess.lists, "remote", sess.remote())
		io.Copy(io.Discard, r)
		return err
	}
	counted := &countingReader{r: io.MultiReader(strings.NewReader(trace), body)}

	env := queue.Envelope{ID: qid, From: sess.from, UTF8: sess.utf8}
	ids := make([]string, len(sess.rcpts))
	for i, a := range sess.rcpts {
		ids[i] = a.ID
		env.Recipients = append(env.Recipients,
			queue.Recipient{Address: a.Address, Account: a.ID})
	}
	_, err = s.queue.Enqueue(context.Background(), env, counted)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		s.log.Info("message refused: too large", "queue_id", qid,
			"remote", sess.remote())
		return smtp.ErrDataTooLarge
	case errors.Is(err, smtp.ErrTooLongLine):
		s.log.Info("message refused: line too long", "queue_id", qid,
			"remote", sess.remote())
		return errLineTooLong
	case errors.Is(err, io.ErrUnexpectedEOF):
		return err
	case err != nil:
		s.log.Error("message not queued", "queue_id", qid,
			"accounts", ids, "err", err)
		return errTempQueue
	}
	s.log.Info("message queued", "queue_id", qid, "accounts", ids,
		"size", counted.n, "remote", sess.remote())
	return nil
}

// Reset ends a transaction. While shutting down, the connection is closed
// once the transaction's reply is out.
func (sess *session) Reset() {
	s := sess.srv
	s.mu.Lock()
	sess.inTx = false
	draining := s.draining
	s.mu.Unlock()
	sess.from, sess.rcpts, sess.lists = "", nil, nil
	if draining {
		// go-smtp holds the connection's lock while calling Reset,
		// so the socket itself is closed; the reply is already sent.
		if nc := sess.conn.Conn(); nc != nil {
			nc.Close()
		}
	}
}

// Logout forgets the connection.
func (sess *session) Logout() error {
	s := sess.srv
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	return nil
}

// remote answers the peer's address for logs.
func (sess *session) remote() string {
	if nc := sess.conn.Conn(); nc != nil {
		return nc.RemoteAddr().String()
	}
	return ""
}

// newQueueID answers a unique id that sorts by time.
func newQueueID() string {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	return strings.ReplaceAll(id.String(), "-", "")
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

// Read reads and counts.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
