package smtpd

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// traceHeaders answers the Return-Path and Received fields put in front
// of a delivered message (RFC 5321 §4.4).
func (sess *session) traceHeaders(qid string) string {
	s := sess.srv
	helo := clean(sess.conn.Hostname())
	if helo == "" {
		helo = "unknown"
	}

	// RFC 3848 §3 and RFC 6531 §3.7.3 name the protocol.
	with := "ESMTP"
	if sess.utf8 {
		with = "UTF8SMTP"
	}
	if _, ok := sess.conn.TLSConnectionState(); ok {
		with += "S"
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", clean(sess.from))
	fmt.Fprintf(&b, "Received: from %s (%s)\r\n", helo, sess.peerLiteral())
	fmt.Fprintf(&b, "\tby %s with %s id %s", clean(s.cfg.Hostname), with, qid)
	// RFC 5321 §4.4: "for" names one recipient; with several it would
	// tell each one about the others, so it is left out.
	if len(sess.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", clean(sess.rcpts[0].Address))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	return b.String()
}

// peerLiteral answers the client's IP as an address literal (RFC 5321
// §4.1.3).
func (sess *session) peerLiteral() string {
	nc := sess.conn.Conn()
	if nc == nil {
		return "[unknown]"
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return "[unknown]"
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "[unknown]"
	case ip.To4() != nil:
		return "[" + ip.String() + "]"
	default:
		return "[IPv6:" + ip.String() + "]"
	}
}

// clean drops characters that could break a header field out of text the
// client chose.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '<' || r == '>' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
}

// crlfReader turns bare LF line ends into CRLF and passes every other
// byte through unchanged.
type crlfReader struct {
	r         io.Reader
	buf       []byte
	i, n      int
	err       error
	prevCR    bool
	pendingLF bool
}

// newCRLFReader wraps r.
func newCRLFReader(r io.Reader) *crlfReader {
	return &crlfReader{r: r, buf: make([]byte, 32<<10)}
}

// Read fills p with converted bytes.
func (c *crlfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.pendingLF {
			p[n] = '\n'
			n++
			c.pendingLF, c.prevCR = false, false
			continue
		}
		if c.i >= c.n {
			if n > 0 {
				return n, nil
			}
			if c.err != nil {
				return 0, c.err
			}
			c.n, c.err = c.r.Read(c.buf)
			c.i = 0
			continue
		}
		b := c.buf[c.i]
		c.i++
		if b == '\n' && !c.prevCR {
			p[n] = '\r'
			n++
			c.pendingLF = true
			continue
		}
		p[n] = b
		n++
		c.prevCR = b == '\r'
	}
	return n, nil
}
