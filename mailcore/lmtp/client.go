package lmtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore/queue"
)

// DefaultTimeout bounds the wait for an LMTP server's greeting and
// each of its replies.
const DefaultTimeout = 10 * time.Second

// Client delivers queued messages to an LMTP server. It is the queue's
// Transport for local recipients.
//
// A server that stops answering (a hung process whose kernel still
// accepts connections) fails the delivery within Timeout of the step
// it stopped at, temporarily, rather than holding the attempt until
// the queue's own limit.
type Client struct {
	// Addr is "unix:PATH" for a unix socket, or HOST:PORT.
	Addr string
	// LocalName is sent in LHLO; empty means "localhost".
	LocalName string
	// Timeout bounds the wait for the greeting, for each reply and for
	// each write of the message; zero means DefaultTimeout. The
	// replies to the message's end may take a second more per MiB of
	// the message and a hundredth of Timeout per recipient: the server stores it
	// before it answers.
	Timeout time.Duration
}

// idleConn is a connection whose writes each fail after idle without
// progress: the message is written with no deadline of go-smtp's.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// Dial connects to addr, "unix:PATH" or HOST:PORT.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return d.DialContext(ctx, "unix", path)
	}
	return d.DialContext(ctx, "tcp", addr)
}

// Deliver runs one LMTP transaction and answers one error per
// recipient; see queue.Transport.
func (c *Client) Deliver(ctx context.Context, d queue.Delivery, body io.Reader) []error {
	out := make([]error, len(d.Recipients))
	all := func(err error) []error {
		for i := range out {
			if out[i] == nil {
				out[i] = err
			}
		}
		return out
	}

	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	conn, err := Dial(ctx, c.Addr)
	if err != nil {
		return all(fmt.Errorf("lmtp: %w", err))
	}
	// go-smtp sets its own deadline for every reply; the context's
	// end closes the connection whatever the step.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cl := smtp.NewClientLMTP(&idleConn{Conn: conn, idle: timeout})
	cl.CommandTimeout = timeout
	cl.SubmissionTimeout = timeout + time.Duration(d.Size>>20)*time.Second +
		time.Duration(len(d.Recipients))*timeout/100
	defer cl.Close()
	name := c.LocalName
	if name == "" {
		name = "localhost"
	}
	if err := cl.Hello(name); err != nil {
		return all(reply(err))
	}
	// Without DSN the server would drop ENVID, and with it the
	// dedupe of a second delivery (RFC 3461 §4.4).
	if ok, _ := cl.Extension("DSN"); !ok {
		return all(errors.New("lmtp: server does not take ENVID (no DSN)"))
	}
	opts := &smtp.MailOptions{EnvelopeID: d.ID, UTF8: d.UTF8, Size: d.Size}
	if err := cl.Mail(d.From, opts); err != nil {
		return all(reply(err))
	}

	// RFC 2033 §4.2: replies to DATA come one per accepted RCPT.
	accepted := 0
	for i, to := range d.Recipients {
		if err := cl.Rcpt(to, nil); err != nil {
			out[i] = reply(err)
			continue
		}
		accepted++
	}
	if accepted == 0 {
		cl.Quit()
		return out
	}
	w, err := cl.Data()
	if err != nil {
		return all(reply(err))
	}
	if _, err := io.Copy(w, body); err != nil {
		// Dropping the connection before the final dot makes the
		// server discard what it got.
		conn.Close()
		return all(fmt.Errorf("lmtp: message not sent whole: %w", err))
	}
	// A recipient without a 250 and without its own reply (the
	// answers stopped midway) is unknown, so temporary: the store
	// drops the copy it may have when the queue tries again.
	resp, err := w.CloseWithLMTPResponse()
	var per smtp.LMTPDataError
	errors.As(err, &per)
	for i, to := range d.Recipients {
		switch {
		case out[i] != nil:
		case resp[to] != nil:
		case per[to] != nil:
			out[i] = reply(per[to])
		case err != nil:
			out[i] = fmt.Errorf("lmtp: no answer for %s: %w", to, err)
		default:
			out[i] = errors.New("lmtp: no answer for " + to)
		}
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	cl.Quit()
	return out
}

// reply marks a 5xx reply as permanent for the queue.
func reply(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 {
		return queue.Permanent(fmt.Errorf("lmtp: %w", err))
	}
	return fmt.Errorf("lmtp: %w", err)
}
