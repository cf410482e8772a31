// Package dsn tells senders what became of their mail: a delivery status
// notification (RFC 3464, in a multipart/report of RFC 6522) when
// recipients failed, and one delay notice per message when recipients
// are still being retried after the queue's delay time.
//
// # Failure semantics
//
// The Notifier is the queue's Reporter. Each notice is a new message
// enqueued into the same queue, with the null reverse path (RFC 5321
// §4.5.5) and the original sender as its one recipient, so it is
// delivered, retried and given up on as any other message: into the
// sender's INBOX over LMTP when the sender is local, to their MX
// otherwise. A message with the null reverse path gets no notice, so a
// notice never causes another. A notice that cannot be enqueued is
// logged with the original's queue id and dropped; the failed recipients
// stay in the queue for an operator to see.
package dsn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"regexp"
	"strings"
	"time"

	"github.com/egretair/egret/mailcore/queue"
)

// maxHeaderBytes bounds the original header quoted in a notice.
const maxHeaderBytes = 64 << 10

// Queue takes notices and gives the original messages; *queue.Queue is
// one.
type Queue interface {
	Enqueue(ctx context.Context, env queue.Envelope, r io.Reader) (queue.Record, error)
	Message(id string) (io.ReadCloser, error)
}

// Config configures the notices.
type Config struct {
	// Hostname names this MTA in Reporting-MTA.
	Hostname string
	// From is the notices' From address, such as the postmaster's.
	From string
	// Now answers the time; nil means time.Now.
	Now func() time.Time
}

// Notifier writes notices into a queue. Set it as the queue's Notifier.
type Notifier struct {
	cfg Config
	q   Queue
	log *slog.Logger
}

// New makes a Notifier writing into q.
func New(cfg Config, q Queue, log *slog.Logger) *Notifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{cfg: cfg, q: q, log: log.With("service", "dsn")}
}

// GaveUp does nothing: Failed tells of the same recipients together.
func (n *Notifier) GaveUp(queue.Record, queue.Recipient) {}

// Failed sends the sender one notice for the recipients that failed.
func (n *Notifier) Failed(rec queue.Record, rcpts []queue.Recipient) {
	n.send(rec, rcpts, false)
}

// Delayed sends the sender one notice that recipients are still tried.
func (n *Notifier) Delayed(rec queue.Record, rcpts []queue.Recipient) {
	n.send(rec, rcpts, true)
}

// send writes and enqueues one notice.
func (n *Notifier) send(rec queue.Record, rcpts []queue.Recipient, delay bool) {
	if rec.From == "" {
		// RFC 3464 §2: a notice is never sent about a notice.
		n.log.Info("no notice for a message without a sender", "queue_id", rec.ID)
		return
	}
	header := n.originalHeader(rec.ID)
	id := newID()
	msg := n.compose(id, rec, rcpts, header, delay)
	env := queue.Envelope{
		ID:         id,
		From:       "",
		UTF8:       rec.UTF8,
		Recipients: []queue.Recipient{{Address: rec.From}},
	}
	if _, err := n.q.Enqueue(context.Background(), env, bytes.NewReader(msg)); err != nil {
		n.log.Error("notice not queued", "queue_id", rec.ID, "rcpt", rec.From, "err", err)
		return
	}
	kind := "failure notice queued"
	if delay {
		kind = "delay notice queued"
	}
	n.log.Info(kind, "queue_id", rec.ID, "notice_id", id, "rcpt", rec.From,
		"recipients", len(rcpts))
}

// originalHeader answers the header of the queued message, up to its
// blank line, or nil when it cannot be read.
func (n *Notifier) originalHeader(id string) []byte {
	f, err := n.q.Message(id)
	if err != nil {
		n.log.Warn("original message unreadable for its notice", "queue_id", id, "err", err)
		return nil
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, maxHeaderBytes))
	var b bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		b.Write(line)
		if err != nil {
			break
		}
	}
	return b.Bytes()
}

// compose answers the notice's bytes: RFC 6522 §3's three parts, a
// text for people, the message/delivery-status fields (RFC 3464 §2) and
// the original header (text/rfc822-headers).
func (n *Notifier) compose(id string, rec queue.Record, rcpts []queue.Recipient, header []byte, delay bool) []byte {
	now := n.cfg.Now()
	boundary := "egret-report-" + id
	var b bytes.Buffer
	w := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\r\n", args...)
	}

	subject := "Undelivered mail returned to sender"
	if delay {
		subject = "Delayed mail (still being retried)"
	}
	w("From: Mail Delivery System <%s>", n.cfg.From)
	w("To: <%s>", rec.From)
	w("Subject: %s", subject)
	w("Date: %s", now.Format(time.RFC1123Z))
	w("Message-ID: <%s@%s>", id, n.cfg.Hostname)
	// RFC 3834 §5: an automatic message that must not be answered
	// automatically.
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: %s", mime.FormatMediaType("multipart/report", map[string]string{
		"report-type": "delivery-status",
		"boundary":    boundary,
	}))
	w("")

	// The part for people.
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("")
	if delay {
		w("Your message has not reached the recipients below yet.")
		w("It is still being tried until %s; nothing needs doing.",
			rec.Expires.Format(time.RFC1123Z))
	} else {
		w("Your message could not be delivered to the recipients below.")
	}
	w("")
	for _, rc := range rcpts {
		w("  <%s>: %s", rc.Address, oneLine(rc.Reply))
	}
	w("")

	// The part for programs (RFC 3464 §2.2, §2.3).
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", n.cfg.Hostname)
	w("Original-Envelope-Id: %s", rec.ID)
	w("Arrival-Date: %s", rec.Received.Format(time.RFC1123Z))
	for _, rc := range rcpts {
		w("")
		w("Final-Recipient: rfc822; %s", rc.Address)
		if delay {
			w("Action: delayed")
		} else {
			w("Action: failed")
		}
		w("Status: %s", status(rc, delay))
		if code := diagnostic(rc.Reply); code != "" {
			w("Diagnostic-Code: smtp; %s", code)
		}
		w("Last-Attempt-Date: %s", now.Format(time.RFC1123Z))
		if delay {
			w("Will-Retry-Until: %s", rec.Expires.Format(time.RFC1123Z))
		}
	}
	w("")

	// The original header, so the sender knows which message.
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	b.Write(crlf(header))
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}

// replyCode finds an SMTP reply code and its enhanced code in a reply.
var replyCode = regexp.MustCompile(`\b([245][0-9][0-9])(?: ([245]\.[0-9]{1,3}\.[0-9]{1,3}))?\b`)

// status answers the RFC 3463 status of a recipient: the enhanced code
// of the last reply when it had one; else 4.4.7 (delivery time expired)
// for a recipient given up on or delayed, 5.0.0 otherwise.
func status(rc queue.Recipient, delay bool) string {
	m := replyCode.FindStringSubmatch(rc.Reply)
	switch {
	case delay:
		if m != nil && strings.HasPrefix(m[2], "4.") {
			return m[2]
		}
		return "4.0.0"
	case strings.HasPrefix(rc.Reply, "gave up"):
		return "4.4.7"
	case m != nil && strings.HasPrefix(m[2], "5."):
		return m[2]
	}
	return "5.0.0"
}

// diagnostic answers the remote reply inside a recipient's last reply,
// as "550 5.1.1 text", or "".
func diagnostic(reply string) string {
	loc := replyCode.FindStringIndex(reply)
	if loc == nil {
		return ""
	}
	return oneLine(reply[loc[0]:])
}

// oneLine keeps a reply on one line of a header.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// crlf turns bare LF line ends into CRLF.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// newID answers a fresh queue id for a notice.
func newID() string {
	var rnd [12]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("dsn-%x-%s", time.Now().UnixNano(), hex.EncodeToString(rnd[:]))
}
