package imapd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// go-imap's imapserver has no hook for commands it does not know, and
// answers them BAD. conn stands between the client and imapserver and
// does what the library cannot: it answers GETQUOTA and GETQUOTAROOT
// (RFC 9208 §4.1) and STARTTLS (RFC 9051 §6.2.1) itself, and adds their
// capabilities to every CAPABILITY list imapserver writes. Doing TLS
// here, below imapserver, is what keeps the quota commands readable
// after STARTTLS: imapserver sees a plain stream either way.
//
// The client's bytes are handed to imapserver one line (or one literal)
// at a time. A command is answered here only when it starts a line that
// is not inside a literal, a continued command or an IDLE; imapserver is
// then waiting for its next command with nothing left to write, so the
// two never write at once.

// maxCommandLine bounds a line the conn inspects; a longer one is passed
// on to imapserver, which refuses it.
const maxCommandLine = 8 << 10

// tlsHandshakeTimeout bounds the TLS handshake after STARTTLS.
const tlsHandshakeTimeout = 30 * time.Second

// listener wraps accepted connections in conn.
type listener struct {
	net.Listener
	srv *Server
}

// Accept answers the next connection, wrapped.
func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(c, l.srv), nil
}

// conn is one client connection as imapserver sees it.
type conn struct {
	raw net.Conn
	srv *Server

	// sess is the session imapserver made for the connection.
	sess atomic.Pointer[session]

	// Read side, used by imapserver's reading goroutine only.
	transport io.ReadWriter // raw, or the TLS connection over it
	in        *bufio.Reader
	pending   []byte
	literal   int64 // literal bytes still to pass on
	continued bool  // the next line continues a command
	idle      bool
	utf8      bool // UTF8=ACCEPT or IMAP4rev2 enabled
	secure    atomic.Bool

	// Write side: capability lists are found line by line.
	wmu     sync.Mutex
	line    []byte
	wlit    int64
	tlsOnce bool
}

func newConn(raw net.Conn, srv *Server) *conn {
	c := &conn{raw: raw, srv: srv, transport: raw}
	c.in = bufio.NewReaderSize(raw, 16<<10)
	if _, ok := raw.(*tls.Conn); ok {
		c.secure.Store(true)
	}
	return c
}

// Read hands imapserver the client's next line or literal bytes,
// answering on the way the commands this conn serves.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.literal > 0 {
			n := int(min(int64(len(p)), c.literal))
			n, err := c.in.Read(p[:n])
			c.literal -= int64(n)
			return n, err
		}
		line, err := c.in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Too long for a command this conn serves; the rest
			// of the line follows as it is.
			c.pending = append(c.pending[:0], line...)
			c.continued = true
			break
		}
		if err != nil {
			if len(line) > 0 {
				c.pending = append(c.pending[:0], line...)
				break
			}
			return 0, err
		}
		start := !c.continued
		c.literal, c.continued = literalAfter(line)
		if start && c.serve(line) {
			continue
		}
		c.pending = append(c.pending[:0], line...)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// literalAfter reads the literal announcement ({n} or {n+}, RFC 9051
// §4.3; ~{n} for binary) that ends a line: its size, and whether the
// command goes on after it.
func literalAfter(line []byte) (int64, bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return 0, false
	}
	num := bytes.TrimSuffix(l[open+1:len(l)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// serve answers a command line itself when it is one this conn serves,
// and keeps track of IDLE and ENABLE. It reports whether it answered.
func (c *conn) serve(line []byte) bool {
	text := bytes.TrimRight(line, "\r\n")
	if c.idle {
		if bytes.EqualFold(text, []byte("DONE")) {
			c.idle = false
		}
		return false
	}
	if len(text) > maxCommandLine {
		return false
	}
	tag, rest, _ := bytes.Cut(text, []byte(" "))
	name, args, _ := bytes.Cut(rest, []byte(" "))
	switch string(bytes.ToUpper(name)) {
	case "IDLE":
		c.idle = true
	case "ENABLE":
		up := bytes.ToUpper(args)
		if bytes.Contains(up, []byte("UTF8=ACCEPT")) || bytes.Contains(up, []byte("IMAP4REV2")) {
			c.utf8 = true
		}
	case "STARTTLS":
		return c.startTLS(string(tag))
	case "GETQUOTA", "GETQUOTAROOT":
		c.quotaCommand(string(tag), string(bytes.ToUpper(name)), args)
		return true
	}
	return false
}

// startTLS runs STARTTLS when this server has a certificate and the
// connection is plain and not yet signed in; otherwise imapserver
// answers the command.
func (c *conn) startTLS(tag string) bool {
	if c.srv.cfg.TLS == nil || c.secure.Load() || c.sess.Load().signedIn() {
		return false
	}
	c.reply(tag + " OK Begin TLS negotiation now\r\n")

	// RFC 9051 §6.2.1: nothing the client sent before the handshake
	// may count as sent over TLS (command injection, CVE-2011-0411
	// and its kin).
	c.in.Discard(c.in.Buffered())
	tc := tls.Server(c.raw, c.srv.cfg.TLS)
	c.raw.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	err := tc.Handshake()
	c.raw.SetDeadline(time.Time{})
	if err != nil {
		c.srv.log.Info("tls handshake failed", "remote", c.raw.RemoteAddr().String(),
			"err", err)
		c.raw.Close()
		return true
	}
	c.wmu.Lock()
	c.transport = tc
	c.wmu.Unlock()
	c.in = bufio.NewReaderSize(tc, 16<<10)
	c.secure.Store(true)
	return true
}

// reply writes bytes of this conn's own to the client.
func (c *conn) reply(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.transport.Write([]byte(s))
}

// Write passes imapserver's output on, with the capabilities this conn
// serves added to each CAPABILITY list.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	total := len(p)
	for len(p) > 0 {
		if c.wlit > 0 {
			n := int(min(int64(len(p)), c.wlit))
			if _, err := c.transport.Write(p[:n]); err != nil {
				return total - len(p), err
			}
			c.wlit -= int64(n)
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			break
		}
		c.line = append(c.line, p[:i+1]...)
		p = p[i+1:]
		out := c.withCaps(c.line)
		c.wlit, _ = literalAfter(c.line)
		if _, err := c.transport.Write(out); err != nil {
			c.line = c.line[:0]
			return total - len(p), err
		}
		c.line = c.line[:0]
	}
	return total, nil
}

// withCaps adds STARTTLS (where it can be used) and the QUOTA
// capabilities (RFC 9208 §3.1) to a response line that lists
// capabilities: "* CAPABILITY ..." or a status with [CAPABILITY ...].
func (c *conn) withCaps(line []byte) []byte {
	var extra []byte
	if c.srv.cfg.TLS != nil && !c.secure.Load() && !c.sess.Load().signedIn() {
		extra = append(extra, " STARTTLS"...)
	}
	extra = append(extra, " QUOTA QUOTA=RES-STORAGE"...)

	if bytes.HasPrefix(line, []byte("* CAPABILITY ")) {
		body := bytes.TrimRight(line, "\r\n")
		out := append(bytes.Clone(body), extra...)
		return append(out, "\r\n"...)
	}
	i := bytes.Index(line, []byte("[CAPABILITY "))
	if i < 0 || bytes.IndexByte(line, '{') >= 0 {
		return line
	}
	end := bytes.IndexByte(line[i:], ']')
	if end < 0 {
		return line
	}
	end += i
	out := append(bytes.Clone(line[:end]), extra...)
	return append(out, line[end:]...)
}

// Close closes the connection (the TLS layer first, when there is one).
func (c *conn) Close() error {
	c.wmu.Lock()
	t := c.transport
	c.wmu.Unlock()
	if tc, ok := t.(*tls.Conn); ok {
		return tc.Close()
	}
	return c.raw.Close()
}

func (c *conn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *conn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
