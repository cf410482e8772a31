package imapd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/egretair/egret/mailcore/store"
)

// The quota root of an account: one root, named "", for all its
// mailboxes together (RFC 9208 §3.2).
const quotaRoot = `""`

// signedIn reports whether the session has an account; nil-safe, since
// a conn may ask before imapserver made its session.
func (sess *session) signedIn() bool {
	return sess != nil && sess.acct != nil
}

// quotaCommand answers GETQUOTA and GETQUOTAROOT (RFC 9208 §4.1.1,
// §4.1.2). The only resource is STORAGE, in units of 1024 octets (RFC
// 9208 §5.1); an account without a quota has no quota root.
func (c *conn) quotaCommand(tag, name string, args []byte) {
	sess := c.sess.Load()
	if !sess.signedIn() {
		c.reply(tag + " BAD " + name + " is for signed-in sessions\r\n")
		c.literal, c.continued = 0, false
		return
	}
	arg, shown, err := c.astring(args)
	if err != nil {
		c.reply(tag + " BAD Syntax error in " + name + "\r\n")
		return
	}
	acct := sess.acct
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var b strings.Builder
	switch name {
	case "GETQUOTAROOT":
		// Modified UTF-7 unless UTF-8 was enabled (RFC 6855 §3) or
		// the client sends UTF-8 anyway, as IMAP4rev2 clients do.
		mailbox := arg
		if !c.utf8 && isASCII(arg) {
			if mailbox, err = decodeMUTF7(arg); err != nil {
				c.reply(tag + " BAD Mailbox name is not modified UTF-7\r\n")
				return
			}
		} else if !utf8.ValidString(arg) {
			c.reply(tag + " BAD Mailbox name is not UTF-8\r\n")
			return
		}
		if _, err := c.srv.store.Status(ctx, acct.ID, mailbox); err != nil {
			if errors.Is(err, store.ErrNoMailbox) || errors.Is(err, store.ErrBadName) {
				c.reply(tag + " NO [NONEXISTENT] No such mailbox\r\n")
				return
			}
			c.srv.log.Error("quota root not answered", "account", acct.ID, "err", err)
			c.reply(tag + " NO [UNAVAILABLE] Temporary failure, try again\r\n")
			return
		}
		if acct.QuotaBytes <= 0 {
			fmt.Fprintf(&b, "* QUOTAROOT %s\r\n", shown)
			break
		}
		fmt.Fprintf(&b, "* QUOTAROOT %s %s\r\n", shown, quotaRoot)
		fallthrough
	case "GETQUOTA":
		if name == "GETQUOTA" && arg != "" {
			c.reply(tag + " NO [NONEXISTENT] No such quota root\r\n")
			return
		}
		if acct.QuotaBytes <= 0 {
			fmt.Fprintf(&b, "* QUOTA %s ()\r\n", quotaRoot)
			break
		}
		u, err := c.srv.store.Usage(ctx, acct.ID)
		if err != nil {
			c.srv.log.Error("quota not answered", "account", acct.ID, "err", err)
			c.reply(tag + " NO [UNAVAILABLE] Temporary failure, try again\r\n")
			return
		}
		fmt.Fprintf(&b, "* QUOTA %s (STORAGE %d %d)\r\n", quotaRoot,
			(u.Bytes+1023)/1024, acct.QuotaBytes/1024)
	}
	b.WriteString(tag + " OK " + name + " completed\r\n")
	c.reply(b.String())
}

// astring reads the one argument of a quota command (RFC 9051 §9,
// astring): an atom, a quoted string or a literal, which is read here.
// It answers the value and the argument as it may be written back.
func (c *conn) astring(args []byte) (string, string, error) {
	s := string(args)
	errSyntax := errors.New("imapd: syntax")
	switch {
	case c.literal > 0 || (c.continued && strings.HasSuffix(s, "{0}")):
		if !strings.HasSuffix(s, "+}") {
			// A synchronizing literal waits for the go-ahead.
			c.reply("+ Ready for literal data\r\n")
		}
		buf := make([]byte, c.literal)
		_, err := ioReadFull(c, buf)
		c.literal = 0
		rest, rerr := c.in.ReadSlice('\n')
		c.continued = false
		if err != nil || rerr != nil || strings.TrimRight(string(rest), "\r\n") != "" {
			return "", "", errSyntax
		}
		return string(buf), strconv.Quote(string(buf)), nil
	case strings.HasPrefix(s, `"`):
		v, err := strconv.Unquote(s)
		if err != nil || strings.ContainsAny(v, "\r\n") {
			return "", "", errSyntax
		}
		return v, s, nil
	case s == "" || strings.ContainsAny(s, ` (){%*"\`):
		return "", "", errSyntax
	}
	return s, s, nil
}

// ioReadFull reads len(buf) literal bytes from the client.
func ioReadFull(c *conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.in.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// isASCII reports whether s has only 7-bit bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// decodeMUTF7 decodes a mailbox name in modified UTF-7 (RFC 3501
// §5.1.3): printable ASCII, "&-" for "&", and runs of UTF-16 in
// modified base64 between "&" and "-".
func decodeMUTF7(s string) (string, error) {
	bad := fmt.Errorf("imapd: %q is not modified UTF-7", s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x20 || ch > 0x7e {
			return "", bad
		}
		if ch != '&' {
			b.WriteByte(ch)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", bad
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(enc, ",", "/"))
		if err != nil || len(raw)%2 != 0 {
			return "", bad
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		b.WriteString(string(utf16.Decode(u)))
	}
	return b.String(), nil
}
