package lmtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/store"
)

const domain = "egretair.example"

// directory is the in-memory Accounts the tests use.
type directory map[string]mailcore.Account

func (d directory) LookupAddress(_ context.Context, address string) (mailcore.Account, error) {
	address = strings.ToLower(address)
	if address == "broken@"+domain {
		return mailcore.Account{}, errors.New("database unreachable")
	}
	if a, ok := d[address]; ok {
		return a, nil
	}
	return mailcore.Account{}, mailcore.ErrNoAccount
}

func (d directory) Authenticate(context.Context, string, string) (mailcore.Account, error) {
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

var accounts = directory{
	"lina@" + domain:    {ID: "acct-lina", Address: "lina@" + domain},
	"wangwei@" + domain: {ID: "acct-wangwei", Address: "wangwei@" + domain},
	// A second address of lina's account.
	"l.lin@" + domain: {ID: "acct-lina", Address: "lina@" + domain},
	// An account with room for 100 bytes.
	"small@" + domain: {ID: "acct-small", Address: "small@" + domain, QuotaBytes: 100},
}

type fixture struct {
	dir    string
	st     *store.Store
	client *Client
}

func start(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	root := t.TempDir()
	st, err := store.Open(filepath.Join(root, "mail"), log)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "lmtp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{}, accounts, st, log)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &fixture{dir: filepath.Join(root, "mail"), st: st, client: &Client{Addr: "unix:" + sock}}
}

func (f *fixture) inbox(t *testing.T, account string) []string {
	t.Helper()
	snap, err := f.st.Messages(context.Background(), account, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, m := range snap.Messages {
		r, _, err := f.st.OpenMessage(context.Background(), account, store.Inbox, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		l = append(l, string(b))
	}
	return l
}

func deliver(f *fixture, id string, body string, rcpts ...string) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.client.Deliver(ctx, queue.Delivery{ID: id, From: "a@remote.example",
		Size: int64(len(body)), Recipients: rcpts}, strings.NewReader(body))
}

func TestRepliesArePerRecipient(t *testing.T) {
	f := start(t)
	body := "Subject: per rcpt\r\n\r\nhello\r\n"
	got := deliver(f, "q1", body, "lina@"+domain, "nobody@"+domain, "broken@"+domain, "wangwei@"+domain)
	want := []struct {
		ok        bool
		permanent bool
		text      string
	}{
		{ok: true},
		{permanent: true, text: "550"},
		{permanent: false, text: "451"},
		{ok: true},
	}
	for i, w := range want {
		switch {
		case w.ok && got[i] != nil:
			t.Errorf("recipient %d: %v, want delivered", i, got[i])
		case !w.ok && (got[i] == nil || queue.IsPermanent(got[i]) != w.permanent ||
			!strings.Contains(got[i].Error(), w.text)):
			t.Errorf("recipient %d: %v, want %s (permanent %v)", i, got[i], w.text, w.permanent)
		}
	}
	for _, acct := range []string{"acct-lina", "acct-wangwei"} {
		if l := f.inbox(t, acct); len(l) != 1 || l[0] != body {
			t.Errorf("%s INBOX: %q", acct, l)
		}
	}
}

func TestRedeliveryWithTheSameQueueIDIsStoredOnce(t *testing.T) {
	f := start(t)
	body := "Subject: twice\r\n\r\n"
	for i := range 3 {
		for j, err := range deliver(f, "q-same", body, "lina@"+domain, "l.lin@"+domain) {
			if err != nil {
				t.Fatalf("delivery %d, recipient %d: %v", i, j, err)
			}
		}
	}
	if l := f.inbox(t, "acct-lina"); len(l) != 1 {
		t.Errorf("INBOX holds %d copies, want 1", len(l))
	}
	// Another queue id is another message.
	deliver(f, "q-other", body, "lina@"+domain)
	if l := f.inbox(t, "acct-lina"); len(l) != 2 {
		t.Errorf("INBOX holds %d messages, want 2", len(l))
	}
}

// failingReader answers its bytes, then an error in place of the end.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("queue: damaged")
	}
	return n, err
}

func TestAMessageThatCannotBeReadWholeIsNotStored(t *testing.T) {
	f := start(t)
	body := "Subject: cut\r\n\r\n" + strings.Repeat("line\r\n", 2000)
	ctx := context.Background()
	got := f.client.Deliver(ctx, queue.Delivery{ID: "q-cut", Recipients: []string{"lina@" + domain}},
		failingReader{strings.NewReader(body)})
	if got[0] == nil || queue.IsPermanent(got[0]) {
		t.Fatalf("cut message answered %v, want a temporary error", got[0])
	}
	time.Sleep(100 * time.Millisecond)
	if l := f.inbox(t, "acct-lina"); len(l) != 0 {
		t.Errorf("INBOX holds %d messages after a cut delivery", len(l))
	}
}

func TestStoreFailureIsTemporaryForThatAccountOnly(t *testing.T) {
	f := start(t)
	deliver(f, "q0", "Subject: first\r\n\r\n", "lina@"+domain, "wangwei@"+domain)
	newDir := filepath.Join(f.dir, "accounts", "acct-wangwei", "mailboxes", "INBOX", "new")
	os.Rename(newDir, newDir+".saved")
	os.WriteFile(newDir, nil, 0o600)
	got := deliver(f, "q1", "Subject: second\r\n\r\n", "lina@"+domain, "wangwei@"+domain)
	if got[0] != nil {
		t.Errorf("lina: %v, want delivered", got[0])
	}
	if got[1] == nil || queue.IsPermanent(got[1]) {
		t.Errorf("wangwei: %v, want a temporary error", got[1])
	}
	if n := len(f.inbox(t, "acct-lina")); n != 2 {
		t.Errorf("lina's INBOX holds %d, want 2", n)
	}
}

func TestAnUnreachableServerIsTemporary(t *testing.T) {
	c := &Client{Addr: "unix:" + filepath.Join(t.TempDir(), "none.sock")}
	got := c.Deliver(context.Background(), queue.Delivery{ID: "q", Recipients: []string{"a@" + domain, "b@" + domain}},
		strings.NewReader("x\r\n"))
	for i, err := range got {
		if err == nil || queue.IsPermanent(err) {
			t.Errorf("recipient %d: %v, want a temporary error", i, err)
		}
	}
}

func TestQuotaRepliesAreTemporaryWhenFullAndPermanentWhenTooBig(t *testing.T) {
	f := start(t)
	small := "small@" + domain
	fill := "Subject: fill\r\n\r\n" + strings.Repeat("x", 60) + "\r\n"
	if err := deliver(f, "q-fill", fill, small)[0]; err != nil {
		t.Fatalf("first message into an empty mailbox: %v", err)
	}

	tests := []struct {
		name      string
		id        string
		body      string
		declare   bool // pass SIZE at MAIL
		permanent bool
		code      string
	}{
		{"a message that would overflow the mailbox is deferred", "q-over",
			strings.Repeat("y", 50), false, false, "452 4.2.2"},
		{"a message larger than the whole quota is refused", "q-huge",
			strings.Repeat("z", 150), false, true, "552 5.2.2"},
		{"a declared size larger than the quota is refused at RCPT", "q-declared",
			strings.Repeat("z", 150), true, true, "552 5.2.2"},
	}
	code := func(err error) string {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return ""
		}
		e := se.EnhancedCode
		return fmt.Sprintf("%d %d.%d.%d", se.Code, e[0], e[1], e[2])
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := queue.Delivery{ID: tt.id, From: "a@remote.example",
				Recipients: []string{small, "lina@" + domain}}
			if tt.declare {
				d.Size = int64(len(tt.body))
			}
			got := f.client.Deliver(context.Background(), d, strings.NewReader(tt.body))
			if got[0] == nil || queue.IsPermanent(got[0]) != tt.permanent ||
				code(got[0]) != tt.code {
				t.Errorf("small: %v, want %s (permanent %v)", got[0], tt.code, tt.permanent)
			}
			if got[1] != nil {
				t.Errorf("lina, who has no quota: %v, want delivered", got[1])
			}
		})
	}
	if l := f.inbox(t, "acct-small"); len(l) != 1 {
		t.Errorf("small's INBOX holds %d messages, want only the first", len(l))
	}
	u, err := f.st.Usage(context.Background(), "acct-small")
	if err != nil || u.Messages != 1 || u.Bytes != int64(len(fill)) {
		t.Errorf("usage %+v, %v; want 1 message of %d bytes", u, err, len(fill))
	}

	// Room made, the deferred message goes in on the next attempt.
	snap, _ := f.st.Messages(context.Background(), "acct-small", store.Inbox)
	f.st.StoreFlags(context.Background(), "acct-small", store.Inbox,
		[]uint32{snap.Messages[0].UID}, store.FlagsAdd, []string{store.FlagDeleted})
	f.st.Expunge(context.Background(), "acct-small", store.Inbox, nil)
	if err := deliver(f, "q-over", strings.Repeat("y", 50), small)[0]; err != nil {
		t.Errorf("retry after an expunge: %v, want delivered", err)
	}
}

func TestAServerThatNeverAnswersFailsWithinTheTimeout(t *testing.T) {
	// The kernel accepts the connections of a paused process; the
	// greeting, or a reply, never comes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	greet := make(chan bool, 4)
	go func() {
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
			if <-greet {
				// Greets and answers LHLO, then falls silent.
				fmt.Fprintf(c, "220 hung.example LMTP\r\n")
				buf := make([]byte, 512)
				c.Read(buf)
				fmt.Fprintf(c, "250-hung.example\r\n250 DSN\r\n")
			}
		}
	}()
	for _, greets := range []bool{false, true} {
		greet <- greets
		c := &Client{Addr: ln.Addr().String(), Timeout: 300 * time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		errs := c.Deliver(ctx, queue.Delivery{ID: "q1", From: "a@remote.example",
			Recipients: []string{"ines@" + domain}}, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
		cancel()
		took := time.Since(start)
		if len(errs) != 1 || errs[0] == nil || queue.IsPermanent(errs[0]) {
			t.Fatalf("greeting %v: delivery to a silent server = %v; want a temporary error", greets, errs)
		}
		if took > 2*time.Second {
			t.Fatalf("greeting %v: delivery to a silent server took %v; want about the timeout", greets, took)
		}
	}
}
