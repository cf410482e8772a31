package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
)

// listDirectory adds lists to the test directory. Members change as a
// test moves people.
type listDirectory struct {
	directory
	mu      sync.Mutex
	members map[string][]string // list -> member addresses
	policy  map[string]string
}

func (d *listDirectory) ExpandList(ctx context.Context, address, sender string) ([]mailcore.Account, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	address = strings.ToLower(address)
	addrs, ok := d.members[address]
	if !ok {
		return nil, false, nil
	}
	var out []mailcore.Account
	mayPost := false
	for _, a := range addrs {
		out = append(out, d.directory[a])
		mayPost = mayPost || strings.EqualFold(a, sender)
	}
	switch p := d.policy[address]; p {
	case mailcore.PostAnyone:
		mayPost = true
	case mailcore.PostDomain:
		mayPost = strings.HasSuffix(strings.ToLower(sender), "@"+domain)
	}
	if !mayPost {
		return nil, true, &mailcore.PostRefusal{List: address, Policy: d.policy[address]}
	}
	return out, true, nil
}

// startLists serves SMTP with lists (and mailbox usage) into the
// fixture's queue.
func startLists(t *testing.T, d *listDirectory) (*fixture, string) {
	f := start(t, Config{})
	cfg := Config{Domain: domain, Hostname: "mx.test",
		Usage: func(ctx context.Context, id string) (int64, error) {
			u, err := f.st.Usage(ctx, id)
			return u.Bytes, err
		}}
	srv := New(cfg, d, f.q, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return f, ln.Addr().String()
}

func smtpCode(err error) string {
	var se *smtp.SMTPError
	if err == nil {
		return "250"
	}
	if !errors.As(err, &se) {
		return err.Error()
	}
	e := se.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d", se.Code, e[0], e[1], e[2])
}

func TestListsExpandAtRCPTAndRefuseWhomThePolicyKeepsOut(t *testing.T) {
	d := &listDirectory{directory: accounts,
		members: map[string][]string{
			"ops@" + domain:  {"lina@" + domain, "wangwei@" + domain},
			"open@" + domain: {"wangwei@" + domain},
			"all@" + domain:  {"lina@" + domain},
		},
		policy: map[string]string{
			"ops@" + domain:  mailcore.PostMembers,
			"open@" + domain: mailcore.PostAnyone,
			"all@" + domain:  mailcore.PostDomain,
		}}
	f, addr := startLists(t, d)
	msg := []byte("Subject: shift change\r\n\r\nFrom 0800.\r\n")

	tests := []struct {
		name, from, to, want string
	}{
		{"a member posts to a members list", "lina@" + domain, "ops@" + domain, "250"},
		{"an outsider is refused by a members list", "x@remote.example", "ops@" + domain, "550 5.7.1"},
		{"an outsider posts to an open list", "x@remote.example", "open@" + domain, "250"},
		{"the domain posts to a domain list", "wangwei@" + domain, "all@" + domain, "250"},
		{"an outsider is refused by a domain list", "x@remote.example", "all@" + domain, "550 5.7.1"},
		{"a list sending to itself is a loop", "open@" + domain, "open@" + domain, "550 5.4.6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smtp.Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = send(t, c, tt.from, []string{tt.to}, msg)
			if got := smtpCode(err); !strings.HasPrefix(got, tt.want) {
				t.Errorf("answer %q (%v), want %s", got, err, tt.want)
			}
			var se *smtp.SMTPError
			if tt.want == "550 5.7.1" && errors.As(err, &se) &&
				!strings.Contains(se.Message, "only") {
				t.Errorf("refusal %q does not name the policy", se.Message)
			}
		})
	}

	// Both members of ops got the post, once each, marked with X-Loop.
	for _, id := range []string{"acct-lina", "acct-wangwei"} {
		b := readBack(t, f, id)
		if !bytes.Contains(b, []byte("X-Loop: ")) {
			t.Errorf("%s: list mail without X-Loop:\n%s", id, b)
		}
	}
	snap, _ := f.st.Messages(context.Background(), "acct-lina", "INBOX")
	if len(snap.Messages) != 2 {
		t.Errorf("lina holds %d messages, want 2 (ops and all)", len(snap.Messages))
	}

	// A message that went out through ops and came back is refused.
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	looped := []byte("X-Loop: ops@" + domain + "\r\nSubject: again\r\n\r\nx\r\n")
	if got := smtpCode(send(t, c, "lina@"+domain, []string{"ops@" + domain}, looped)); got != "550 5.4.6" {
		t.Errorf("a message back from ops: %s, want 550 5.4.6", got)
	}

	// wangwei leaves ops: the next message reaches lina alone.
	d.mu.Lock()
	d.members["ops@"+domain] = []string{"lina@" + domain}
	d.mu.Unlock()
	c.Reset()
	if err := send(t, c, "lina@"+domain, []string{"ops@" + domain}, msg); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	snap, _ = f.st.Messages(context.Background(), "acct-wangwei", "INBOX")
	if len(snap.Messages) != 2 {
		t.Errorf("wangwei, who left ops, holds %d messages, want 2 (ops before, open)", len(snap.Messages))
	}
}

func TestAFullMailboxIsDeferredAtRCPTAndATooBigMessageRefused(t *testing.T) {
	d := &listDirectory{directory: directory{
		"lina@" + domain:  {ID: "acct-lina", Address: "lina@" + domain},
		"small@" + domain: {ID: "acct-small", Address: "small@" + domain, QuotaBytes: 1000},
	}}
	f, addr := startLists(t, d)
	f.st.Deliver(context.Background(), "fill", []string{"acct-small"},
		strings.NewReader(strings.Repeat("x", 1000)))

	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@remote.example", &smtp.MailOptions{Size: 2000}); err != nil {
		t.Fatal(err)
	}
	if got := smtpCode(c.Rcpt("small@"+domain, nil)); got != "552 5.2.2" {
		t.Errorf("a declared size above the quota: %s, want 552 5.2.2", got)
	}
	c.Reset()
	if err := c.Mail("a@remote.example", &smtp.MailOptions{Size: 10}); err != nil {
		t.Fatal(err)
	}
	if got := smtpCode(c.Rcpt("small@"+domain, nil)); got != "452 4.2.2" {
		t.Errorf("a full mailbox: %s, want 452 4.2.2", got)
	}
	if got := smtpCode(c.Rcpt("lina@"+domain, nil)); got != "250" {
		t.Errorf("another recipient in the same message: %s, want 250", got)
	}
}
