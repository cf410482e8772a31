package imapproxy

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/egretair/egret/mailcore"
)

// errProxyRefused is a back's NO to the proxy login.
var errProxyRefused = errors.New("imapproxy: back refused the proxy login")

// dialBack connects to the account's back node and signs in there; it
// answers the connection, positioned after the sign-in, and the back's
// capability list for a signed-in session.
func (s *Server) dialBack(acct mailcore.Account) (net.Conn, string, error) {
	peer := ""
	if s.cfg.HomeOf != nil {
		peer = s.cfg.HomeOf(acct.ID)
	}
	// The call goes to the member routed to now, and its outcome is
	// reported for that member, whoever holds the lease by then.
	breaker := peer
	if s.cfg.Breakers != nil {
		b, err := s.cfg.Breakers.Allow(peer)
		if err != nil {
			return nil, "", err
		}
		breaker = b
	}
	addr, ok := "", false
	if s.cfg.BackAddr != nil {
		addr, ok = s.cfg.BackAddr(breaker)
	}
	if !ok {
		return nil, "", fmt.Errorf("imapproxy: no address for back node %q", breaker)
	}

	c, caps, err := s.signIn(addr, acct.Address)
	report := err
	if errors.Is(err, errProxyRefused) {
		// The back answered: it is well, the configuration is not.
		report = nil
		s.log.Error("proxy login refused by back node", "peer", breaker,
			"account", acct.ID, "err", err)
	}
	if s.cfg.Breakers != nil {
		s.cfg.Breakers.Report(breaker, report)
	}
	if err != nil {
		return nil, "", fmt.Errorf("back node %s: %w", breaker, err)
	}
	return c, caps, nil
}

// signIn runs the greeting and AUTHENTICATE PLAIN as the proxy on addr.
func (s *Server) signIn(addr, address string) (net.Conn, string, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Now().Add(s.cfg.DialTimeout))
	// The reader is dropped after sign-in: the back sends nothing
	// unasked before the tagged reply, so nothing is left in it.
	r := bufio.NewReader(c)
	fail := func(err error) (net.Conn, string, error) {
		c.Close()
		return nil, "", err
	}
	greet, err := r.ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("imapproxy: greeting: %w", err))
	}
	if !strings.HasPrefix(greet, "* OK") {
		return fail(fmt.Errorf("imapproxy: greeting %q", strings.TrimSpace(greet)))
	}
	creds := base64.StdEncoding.EncodeToString(
		[]byte(address + "\x00" + s.cfg.ProxyIdentity + "\x00" + s.cfg.ProxySecret))
	c.SetDeadline(time.Now().Add(signInTimeout))
	if _, err := fmt.Fprintf(c, "P1 AUTHENTICATE PLAIN %s\r\n", creds); err != nil {
		return fail(err)
	}
	var caps string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fail(fmt.Errorf("imapproxy: sign-in: %w", err))
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "* CAPABILITY ") {
			caps = strings.TrimPrefix(line, "* CAPABILITY ")
			continue
		}
		if strings.HasPrefix(line, "P1 OK") {
			if c := capsCode(line); c != "" {
				caps = c
			}
			break
		}
		if strings.HasPrefix(line, "P1 ") && strings.Contains(line, "[UNAVAILABLE]") {
			return fail(fmt.Errorf("imapproxy: sign-in: %s", line))
		}
		if strings.HasPrefix(line, "P1 ") {
			return fail(fmt.Errorf("%w: %s", errProxyRefused, line))
		}
	}
	if caps == "" {
		return fail(errors.New("imapproxy: back sent no capabilities"))
	}
	if r.Buffered() > 0 {
		return fail(errors.New("imapproxy: back sent more than its sign-in reply"))
	}
	c.SetDeadline(time.Time{})
	return c, caps, nil
}

// capsCode answers the list in a [CAPABILITY ...] response code.
func capsCode(line string) string {
	_, after, ok := strings.Cut(line, "[CAPABILITY ")
	if !ok {
		return ""
	}
	list, _, ok := strings.Cut(after, "]")
	if !ok {
		return ""
	}
	return list
}
