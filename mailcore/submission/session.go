package submission

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/oauthsasl"
	"github.com/egretair/egret/mailcore/queue"
)

// Replies of this server besides go-smtp's own.
var (
	// RFC 4954 §6.
	errAuthRequired = &smtp.SMTPError{
		Code:         530,
		EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message:      "Authentication required",
	}
	errBadCredentials = &smtp.SMTPError{
		Code:         535,
		EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message:      "Authentication credentials invalid",
	}
	errEncryptionRequired = &smtp.SMTPError{
		Code:         538,
		EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message:      "Encryption required for requested authentication mechanism",
	}
	errTempAuth = &smtp.SMTPError{
		Code:         454,
		EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message:      "Temporary authentication failure, try again later",
	}
	errNotYours = &smtp.SMTPError{
		Code:         553,
		EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message:      "Sender address not allowed for this account",
	}
	errRateLimited = &smtp.SMTPError{
		Code:         450,
		EnhancedCode: smtp.EnhancedCode{4, 7, 1},
		Message:      "Sending rate exceeded, try again later",
	}
	errNoMailbox = &smtp.SMTPError{
		Code:         550,
		EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message:      "No such mailbox",
	}
	errBadAddress = &smtp.SMTPError{
		Code:         501,
		EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message:      "Bad recipient address syntax",
	}
	errTempLookup = &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary failure looking up the address, try again later",
	}
	errTempQueue = &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "Temporary failure queueing the message, try again later",
	}
	errNoFrom = &smtp.SMTPError{
		Code:         550,
		EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message:      "Message has no valid From field",
	}
	errHeaderTooBig = &smtp.SMTPError{
		Code:         552,
		EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message:      "Message header too large",
	}
	errShuttingDown = &smtp.SMTPError{
		Code:         421,
		EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message:      "Server shutting down, try again later",
	}
)

// maxHeaderBytes bounds the header read to check From.
const maxHeaderBytes = 1 << 20

// session is one connection's state.
type session struct {
	srv  *Server
	conn *smtp.Conn

	// acct is the signed-in account; ID is empty before AUTH.
	acct  mailcore.Account
	from  string
	utf8  bool
	rcpts []queue.Recipient
}

// newSession starts a connection's state.
func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errShuttingDown
	}
	return &session{srv: s, conn: c}, nil
}

// AuthMechanisms answers the mechanisms offered: none until a password
// may be sent on the connection.
func (sess *session) AuthMechanisms() []string {
	if nc := sess.conn.Conn(); nc == nil || !authAllowed(nc) {
		return nil
	}
	return append([]string{sasl.Plain, sasl.Login}, sess.tokenMechanisms()...)
}

// Auth starts a SASL exchange.
func (sess *session) Auth(mech string) (sasl.Server, error) {
	if nc := sess.conn.Conn(); nc == nil || !authAllowed(nc) {
		return nil, errEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			// RFC 4616 §2: acting as another identity is not offered.
			if identity != "" && identity != user {
				return errBadCredentials
			}
			return sess.authenticate(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: sess.authenticate}, nil
	case oauthsasl.OAuthBearer, oauthsasl.XOAuth2:
		if srv := sess.tokenAuth(mech); srv != nil {
			return srv, nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authenticate checks a name and password against the directory.
func (sess *session) authenticate(user, pass string) error {
	s := sess.srv
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LookupTimeout)
	defer cancel()
	acct, err := mailcore.Authenticate(ctx, s.cfg.Guard, s.accounts, user, pass, sess.remote())
	switch {
	case errors.Is(err, mailcore.ErrBadCredentials):
		s.log.Info("sign-in refused", "user", user, "remote", sess.remote())
		return errBadCredentials
	case err != nil:
		s.log.Warn("sign-in not checked", "user", user, "err", err)
		return errTempAuth
	}
	sess.acct = acct
	return nil
}

// Mail starts a transaction for a signed-in account sending as itself.
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	s := sess.srv
	if sess.acct.ID == "" {
		s.log.Info("unauthenticated send refused", "from", from, "remote", sess.remote())
		return errAuthRequired
	}
	if opts != nil && opts.Size > s.cfg.MaxMessageBytes {
		return smtp.ErrDataTooLarge
	}
	if err := sess.checkSender(from); err != nil {
		return err
	}
	if !s.limit.allow(sess.acct.ID) {
		s.log.Warn("send rate exceeded", "account", sess.acct.ID, "from", from)
		return errRateLimited
	}
	sess.from = from
	sess.utf8 = opts != nil && opts.UTF8
	sess.rcpts = nil
	return nil
}

// checkSender refuses an address the account may not send as.
func (sess *session) checkSender(addr string) error {
	s := sess.srv
	if addr == "" {
		s.log.Info("sender refused", "account", sess.acct.ID, "from", "<>")
		return errNotYours
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LookupTimeout)
	defer cancel()
	ok, err := sendAs(ctx, s.accounts, sess.acct.ID, addr)
	if err != nil {
		s.log.Warn("sender not checked", "account", sess.acct.ID, "from", addr, "err", err)
		return errTempLookup
	}
	if !ok {
		s.log.Info("sender refused", "account", sess.acct.ID, "from", addr)
		return errNotYours
	}
	return nil
}

// sendAs asks accounts whether accountID may send as addr.
func sendAs(ctx context.Context, accounts mailcore.Accounts, accountID, addr string) (bool, error) {
	if s, ok := accounts.(mailcore.Senders); ok {
		return s.SendAs(ctx, accountID, addr)
	}
	a, err := accounts.LookupAddress(ctx, addr)
	if errors.Is(err, mailcore.ErrNoAccount) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return a.ID == accountID, nil
}

// Rcpt takes a recipient: any domain, since the sender signed in; the
// local domain's addresses are checked at once.
func (sess *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s := sess.srv
	if sess.acct.ID == "" {
		return errAuthRequired
	}
	local, domain, ok := strings.Cut(to, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(to, " <>") {
		return errBadAddress
	}
	rc := queue.Recipient{Address: to}
	if strings.EqualFold(domain, s.cfg.Domain) {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LookupTimeout)
		defer cancel()
		acct, err := s.accounts.LookupAddress(ctx, to)
		switch {
		case errors.Is(err, mailcore.ErrNoAccount):
			return errNoMailbox
		case err != nil:
			s.log.Warn("recipient lookup failed", "account", sess.acct.ID, "rcpt", to, "err", err)
			return errTempLookup
		}
		rc.Account = acct.ID
	}
	if !slices.ContainsFunc(sess.rcpts, func(r queue.Recipient) bool {
		return strings.EqualFold(r.Address, to)
	}) {
		sess.rcpts = append(sess.rcpts, rc)
	}
	return nil
}

// Data checks the From field, then queues the message and answers only
// when it is on disk.
func (sess *session) Data(r io.Reader) error {
	s := sess.srv
	br := bufio.NewReader(r)
	header, err := readHeader(br)
	if err != nil {
		return err
	}
	if err := sess.checkHeader(header); err != nil {
		return err
	}

	qid := newQueueID()
	front := sess.trace(qid) + missingFields(header, qid, s.cfg.Hostname, s.cfg.Now())
	body := io.MultiReader(strings.NewReader(front), bytes.NewReader(header), newCRLFReader(br))
	env := queue.Envelope{ID: qid, From: sess.from, UTF8: sess.utf8, Recipients: sess.rcpts}
	_, err = s.queue.Enqueue(context.Background(), env, body)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return smtp.ErrDataTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF):
		return err
	case err != nil:
		s.log.Error("message not queued", "queue_id", qid, "account", sess.acct.ID, "err", err)
		return errTempQueue
	}
	s.limit.record(sess.acct.ID)
	s.log.Info("message submitted", "queue_id", qid, "account", sess.acct.ID,
		"recipients", len(sess.rcpts), "remote", sess.remote())
	return nil
}

// readHeader reads the header up to and with its blank line, with line
// ends made CRLF.
func readHeader(br *bufio.Reader) ([]byte, error) {
	var b bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			b.Write(line)
			b.WriteString("\r\n")
			if len(line) == 0 {
				return b.Bytes(), nil
			}
		}
		if b.Len() > maxHeaderBytes {
			return nil, errHeaderTooBig
		}
		if err == io.EOF {
			// A message of header only: the blank line is added.
			b.WriteString("\r\n")
			return b.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// checkHeader refuses a message whose From or Sender names an address
// the account may not send as.
func (sess *session) checkHeader(header []byte) error {
	m, err := mail.ReadMessage(bytes.NewReader(header))
	if err != nil {
		return errNoFrom
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) == 0 {
		return errNoFrom
	}
	if v := m.Header.Get("Sender"); v != "" {
		sender, err := mail.ParseAddress(v)
		if err != nil {
			return errNoFrom
		}
		from = append(from, sender)
	}
	for _, a := range from {
		if err := sess.checkSender(a.Address); err != nil {
			return err
		}
	}
	return nil
}

// trace answers the Received field (RFC 5321 §4.4), naming the signed-in
// protocol (RFC 3848 §3: ESMTPA, ESMTPSA).
func (sess *session) trace(qid string) string {
	s := sess.srv
	with := "ESMTPA"
	if _, ok := sess.conn.TLSConnectionState(); ok {
		with = "ESMTPSA"
	}
	if sess.utf8 {
		// RFC 6531 §3.7.3.
		with = "UTF8SMTP" + with[len("ESMTP"):]
	}
	helo := clean(sess.conn.Hostname())
	if helo == "" {
		helo = "unknown"
	}
	return fmt.Sprintf("Received: from %s (%s)\r\n\tby %s with %s id %s;\r\n\t%s\r\n",
		helo, sess.peer(), clean(s.cfg.Hostname), with, qid,
		s.cfg.Now().Format(time.RFC1123Z))
}

// missingFields answers a Date and a Message-ID for a header that lacks
// them (RFC 6409 §8.2, §8.3; RFC 5322 §3.6 requires Date).
func missingFields(header []byte, qid, host string, now time.Time) string {
	m, err := mail.ReadMessage(bytes.NewReader(header))
	if err != nil {
		return ""
	}
	var b strings.Builder
	if m.Header.Get("Date") == "" {
		fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if m.Header.Get("Message-ID") == "" {
		fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", qid, clean(host))
	}
	return b.String()
}

// peer answers the client's address as a literal (RFC 5321 §4.1.3).
func (sess *session) peer() string {
	nc := sess.conn.Conn()
	if nc == nil {
		return "[unknown]"
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	ip := net.ParseIP(host)
	switch {
	case err != nil || ip == nil:
		return "[unknown]"
	case ip.To4() != nil:
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// remote answers the peer's address for logs.
func (sess *session) remote() string {
	if nc := sess.conn.Conn(); nc != nil {
		return nc.RemoteAddr().String()
	}
	return ""
}

// Reset ends a transaction.
func (sess *session) Reset() {
	sess.from, sess.rcpts = "", nil
}

// Logout ends the session.
func (sess *session) Logout() error { return nil }

// clean keeps a client-given name from breaking a header field.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
}

// newQueueID answers a unique id that sorts by time.
func newQueueID() string {
	var rnd [8]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(rnd[:]))
}

// loginServer is the server side of the LOGIN mechanism: it asks for the
// name, then the password, each as a base64 challenge.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

// Next takes the client's next answer.
func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if resp == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		// An initial response carries the name.
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("submission: unexpected LOGIN response")
}
