package imapproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/oauthsasl"
)

// session is one client connection before and after sign-in.
type session struct {
	srv    *Server
	raw    net.Conn
	conn   net.Conn // raw, or TLS over it
	in     *bufio.Reader
	secure bool
}

// errQuit ends the pre-auth loop without an error to log.
var errQuit = errors.New("imapproxy: client left")

func (ss *session) run() {
	ss.conn = ss.raw
	if _, ok := ss.raw.(*tls.Conn); ok {
		ss.secure = true
	}
	ss.in = bufio.NewReaderSize(ss.conn, 16<<10)
	ss.write("* OK [CAPABILITY " + ss.preAuthCaps() + "] IMAP server ready\r\n")
	for {
		ss.raw.SetReadDeadline(time.Now().Add(preAuthTimeout))
		back, err := ss.command()
		if err != nil {
			return
		}
		if back != nil {
			ss.raw.SetReadDeadline(time.Time{})
			ss.relay(back)
			return
		}
	}
}

func (ss *session) write(s string) error {
	_, err := io.WriteString(ss.conn, s)
	return err
}

// command reads and answers one pre-auth command; after a successful
// sign-in it answers the connection to the back.
func (ss *session) command() (net.Conn, error) {
	line, err := ss.readLine()
	if err != nil {
		return nil, err
	}
	tag, rest, _ := strings.Cut(line, " ")
	name, args, _ := strings.Cut(rest, " ")
	if tag == "" || name == "" {
		return nil, ss.write("* BAD Syntax error\r\n")
	}
	switch strings.ToUpper(name) {
	case "CAPABILITY":
		ss.write("* CAPABILITY " + ss.preAuthCaps() + "\r\n")
		return nil, ss.write(tag + " OK CAPABILITY completed\r\n")
	case "NOOP":
		return nil, ss.write(tag + " OK NOOP completed\r\n")
	case "LOGOUT":
		ss.write("* BYE Logging out\r\n")
		ss.write(tag + " OK LOGOUT completed\r\n")
		return nil, errQuit
	case "STARTTLS":
		return nil, ss.startTLS(tag)
	case "LOGIN":
		user, rest, err := ss.astring(args)
		if err != nil {
			return nil, ss.write(tag + " BAD " + err.Error() + "\r\n")
		}
		pass, rest, err := ss.astring(strings.TrimPrefix(rest, " "))
		if err != nil || rest != "" {
			return nil, ss.write(tag + " BAD Syntax error in LOGIN\r\n")
		}
		return ss.login(tag, user, pass, "Logged in")
	case "AUTHENTICATE":
		return ss.authenticate(tag, args)
	}
	return nil, ss.write(tag + " BAD Command unknown or not allowed before sign-in\r\n")
}

// readLine reads one line without its CRLF.
func (ss *session) readLine() (string, error) {
	line, err := ss.in.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLine {
		ss.write("* BYE Line too long\r\n")
		return "", errors.New("imapproxy: line too long")
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// astring reads an atom, a quoted string or a literal (RFC 9051 §4.3)
// from the start of s, reading the literal's bytes and the rest of its
// line from the client; it answers the string and what follows it.
func (ss *session) astring(s string) (string, string, error) {
	switch {
	case s == "":
		return "", "", errors.New("Missing argument")
	case s[0] == '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
				if i < len(s) {
					b.WriteByte(s[i])
				}
			case '"':
				return b.String(), s[i+1:], nil
			default:
				b.WriteByte(s[i])
			}
		}
		return "", "", errors.New("Unterminated quoted string")
	case s[0] == '{' && strings.HasSuffix(s, "}"):
		num := strings.TrimSuffix(s[1:len(s)-1], "+")
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || n > maxLiteral {
			return "", "", errors.New("Bad literal")
		}
		if !strings.HasSuffix(s, "+}") {
			ss.write("+ Ready for literal data\r\n")
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(ss.in, buf); err != nil {
			return "", "", err
		}
		rest, err := ss.readLine()
		if err != nil {
			return "", "", err
		}
		return string(buf), rest, nil
	}
	atom, rest, _ := strings.Cut(s, " ")
	if rest != "" || strings.HasSuffix(s, " ") {
		rest = " " + rest
	}
	return atom, rest, nil
}

// startTLS upgrades the connection (RFC 9051 §6.2.1).
func (ss *session) startTLS(tag string) error {
	if ss.srv.cfg.TLS == nil || ss.secure {
		return ss.write(tag + " BAD STARTTLS not available\r\n")
	}
	if err := ss.write(tag + " OK Begin TLS negotiation now\r\n"); err != nil {
		return err
	}
	// Bytes sent before the handshake must not count as sent over
	// TLS (command injection, CVE-2011-0411).
	ss.in.Discard(ss.in.Buffered())
	tc := tls.Server(ss.raw, ss.srv.cfg.TLS)
	ss.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	err := tc.Handshake()
	ss.raw.SetDeadline(time.Time{})
	if err != nil {
		ss.srv.log.Info("tls handshake failed", "remote", ss.raw.RemoteAddr().String(), "err", err)
		return err
	}
	ss.conn = tc
	ss.in = bufio.NewReaderSize(tc, 16<<10)
	ss.secure = true
	return nil
}

// authenticate runs AUTHENTICATE: PLAIN (RFC 4616) here, OAUTHBEARER
// and XOAUTH2 in tokens.go, with or without an initial response
// (SASL-IR, RFC 4959).
func (ss *session) authenticate(tag, args string) (net.Conn, error) {
	mech, ir, hasIR := strings.Cut(args, " ")
	mech = strings.ToUpper(mech)
	switch mech {
	case oauthsasl.OAuthBearer, oauthsasl.XOAuth2:
		if ss.srv.tokens != nil {
			return ss.authenticateToken(tag, mech, ir, hasIR)
		}
	case "PLAIN":
		return ss.authenticatePlain(tag, ir, hasIR)
	}
	return nil, ss.write(tag + " NO SASL mechanism not supported\r\n")
}

// authenticatePlain runs AUTHENTICATE PLAIN; ir is the initial
// response, if hasIR.
func (ss *session) authenticatePlain(tag, ir string, hasIR bool) (net.Conn, error) {
	if !hasIR {
		if err := ss.write("+ \r\n"); err != nil {
			return nil, err
		}
		line, err := ss.readLine()
		if err != nil {
			return nil, err
		}
		ir = line
	}
	if ir == "*" {
		return nil, ss.write(tag + " BAD Authentication aborted\r\n")
	}
	if ir == "=" {
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		return nil, ss.write(tag + " BAD Invalid base64\r\n")
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return nil, ss.write(tag + " BAD Invalid PLAIN response\r\n")
	}
	if parts[0] != "" && parts[0] != parts[1] {
		return nil, ss.write(tag + " NO [AUTHORIZATIONFAILED] SASL identity not supported\r\n")
	}
	return ss.login(tag, parts[1], parts[2], "PLAIN authentication successful")
}

// plaintextAllowed reports whether a password may be sent: over TLS or
// from this host, as imapd decides.
func (ss *session) plaintextAllowed() bool {
	if ss.secure {
		return true
	}
	addr, ok := ss.raw.RemoteAddr().(*net.TCPAddr)
	if !ok {
		_, unix := ss.raw.RemoteAddr().(*net.UnixAddr)
		return unix
	}
	return addr.IP.IsLoopback()
}

// login checks the password, then signs in on the account's back; ok
// is the text of the OK, as imapd words it for the command.
func (ss *session) login(tag, user, pass, ok string) (net.Conn, error) {
	s := ss.srv
	remote := ss.raw.RemoteAddr().String()
	if !ss.plaintextAllowed() {
		return nil, ss.write(tag + " NO [PRIVACYREQUIRED] Use STARTTLS before sending a password\r\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	acct, err := mailcore.Authenticate(ctx, s.cfg.Guard, s.accounts, user, pass, remote)
	switch {
	case errors.Is(err, mailcore.ErrBadCredentials):
		s.log.Info("login failed", "user", user, "remote", remote)
		return nil, ss.write(tag + " NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
	case err != nil:
		s.log.Warn("login not checked: directory unavailable", "user", user, "err", err)
		return nil, ss.write(tag + " NO [UNAVAILABLE] Directory unavailable, try again later\r\n")
	}
	return ss.enter(tag, acct, ok)
}

// enter signs the account in on its back and answers the client's
// sign-in command OK with ok as text, for a client whose credentials
// were checked.
func (ss *session) enter(tag string, acct mailcore.Account, ok string) (net.Conn, error) {
	s := ss.srv
	back, caps, err := s.dialBack(acct)
	if err != nil {
		s.log.Warn("back node not reached", "account", acct.ID, "err", err)
		return nil, ss.write(tag + " NO [UNAVAILABLE] Mailbox server unavailable, try again later\r\n")
	}
	if err := ss.write(tag + " OK [CAPABILITY " + caps + "] " + ok + "\r\n"); err != nil {
		back.Close()
		return nil, err
	}
	s.log.Debug("logged in", "account", acct.ID, "remote", ss.raw.RemoteAddr().String())
	return back, nil
}

// relay copies bytes both ways until either side closes. What the
// client sent after its sign-in command and the proxy already read
// goes first.
func (ss *session) relay(back net.Conn) {
	defer back.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(ss.conn, back)
		// The back hung up: so does the client's side.
		ss.raw.Close()
		close(done)
	}()
	io.Copy(back, ss.in)
	back.Close()
	<-done
}
