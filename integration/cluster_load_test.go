package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// tokenHeader marks each message of a load with a token of its own, so
// a message filed twice, or lost, shows in the recipient's INBOX.
const tokenHeader = "X-Egret-Load-Token"

// loadUser is one recipient and IMAP user of a load.
type loadUser struct {
	address, login, password string
}

// imapFailure is one IMAP round of a load that failed.
type imapFailure struct {
	at  time.Time
	err error
}

// load is a steady stream of SMTP sends and IMAP sign-ins through a
// node, one each every interval, taking the users in turn.
type load struct {
	users []loadUser
	rounds

	mu        sync.Mutex
	acked     []map[string]bool // per user, the tokens answered 250
	sendFails []error
	imapFails [][]imapFailure // per user
	imapOK    []int           // per user
}

// startLoad starts the load on n; stopLoad ends it.
func startLoad(t *testing.T, n *node, users []loadUser, interval time.Duration) *load {
	l := &load{users: users,
		acked: make([]map[string]bool, len(users)), imapFails: make([][]imapFailure, len(users)),
		imapOK: make([]int, len(users))}
	for i := range users {
		l.acked[i] = map[string]bool{}
	}
	l.every(interval, func(k int) {
		u := l.users[k%len(l.users)]
		token := randomString(t, 16)
		err := sendToken(n.smtpAddr, u.address, token)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.sendFails = append(l.sendFails, fmt.Errorf("mail to %s: %w", u.address, err))
			return
		}
		l.acked[k%len(l.users)][token] = true
	})
	l.every(interval, func(k int) {
		i := k % len(l.users)
		u := l.users[i]
		_, err := inboxCount(n.imapAddr, u.login, u.password)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.imapFails[i] = append(l.imapFails[i], imapFailure{at: time.Now(), err: err})
			return
		}
		l.imapOK[i]++
	})
	t.Cleanup(l.stopLoad)
	return l
}

// sendToken sends one message with the token over SMTP.
func sendToken(addr, to, token string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := fmt.Sprintf("From: <load@remote.example>\r\nTo: <%s>\r\nSubject: load\r\n"+
		"Message-ID: <%s@remote.example>\r\n%s: %s\r\n\r\nSteady.\r\n", to, token, tokenHeader, token)
	if err := c.SendMail("load@remote.example", []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// Time limits of one client call of a load, so that a node that hangs
// shows as a failed call rather than a stuck test.
const (
	clientDialTimeout = 2 * time.Second
	clientCallTimeout = 10 * time.Second
)

// readInbox signs in and selects INBOX; with tokens it also answers
// how many times each load token is there.
func readInbox(addr, user, password string, tokens bool) (map[string]int, error) {
	conn, err := net.DialTimeout("tcp", addr, clientDialTimeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(clientCallTimeout))
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("SELECT INBOX of %s: %w", user, err)
	}
	out := map[string]int{}
	if !tokens || sel.NumMessages == 0 {
		c.Logout().Wait()
		return out, nil
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader,
		HeaderFields: []string{tokenHeader}, Peek: true}
	var all imap.SeqSet
	all.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("FETCH in INBOX of %s: %w", user, err)
	}
	for _, m := range msgs {
		h := strings.TrimSpace(string(m.FindBodySection(section)))
		if v, ok := strings.CutPrefix(h, tokenHeader+":"); ok {
			out[strings.TrimSpace(v)]++
		}
	}
	c.Logout().Wait()
	return out, nil
}

// checkDelivered waits until every token the load had answered 250 is
// in its user's INBOX, then requires each there exactly once and no
// token the load did not send.
func (l *load) checkDelivered(t *testing.T, n *node, limit time.Duration) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.sendFails {
		t.Errorf("the front refused load mail: %v", err)
	}
	for i, u := range l.users {
		start := time.Now()
		var got map[string]int
		var err error
		for {
			got, err = readInbox(n.imapAddr, u.login, u.password, true)
			missing := 0
			for tok := range l.acked[i] {
				if got[tok] == 0 {
					missing++
				}
			}
			if err == nil && missing == 0 {
				break
			}
			if time.Since(start) > limit {
				t.Fatalf("INBOX of %s after %v: %d of %d acknowledged messages missing, %v",
					u.login, limit, missing, len(l.acked[i]), err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		for tok, k := range got {
			if !l.acked[i][tok] {
				t.Errorf("INBOX of %s holds %s, which was not acknowledged to it", u.login, tok)
			}
			if k != 1 {
				t.Errorf("INBOX of %s holds %s %d times, want once", u.login, tok, k)
			}
		}
		t.Logf("%s: %d messages acknowledged, each in the INBOX once; %d IMAP rounds passed, %d failed",
			u.login, len(l.acked[i]), l.imapOK[i], len(l.imapFails[i]))
	}
}

// imapFailures answers the failed IMAP rounds of user i.
func (l *load) imapFailures(i int) []imapFailure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]imapFailure(nil), l.imapFails[i]...)
}

// mailboxFacts GETs a user's mailbox facts through the node's API and
// answers the status, the Retry-After header and the decoded body.
func mailboxFacts(t *testing.T, n *node, user string) (int, string, map[string]any) {
	t.Helper()
	u := "http://" + n.httpAddr + "/api/v1/users/" + url.PathEscape(user) + "/mailbox?latest=5"
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.apiKey)
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("mailbox facts of %s: status %d, body not JSON: %v", user, resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), body
}
