package smtpd

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/lmtp"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/mailcore/tlsconf"
)

const domain = "egretair.example"

// directory is the in-memory Accounts the tests use in place of the
// directory package.
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

func (d directory) Authenticate(_ context.Context, username, password string) (mailcore.Account, error) {
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

var accounts = directory{
	"lina@" + domain:       {ID: "acct-lina", Address: "lina@" + domain, Login: "lina"},
	"wangwei@" + domain:    {ID: "acct-wangwei", Address: "wangwei@" + domain, Login: "wangwei"},
	"postmaster@" + domain: {ID: "acct-pm", Address: "postmaster@" + domain, Login: "pm"},
}

// fixture is the receiving side of a node: SMTP into the queue, the
// queue over LMTP into the store.
type fixture struct {
	dir  string // the store's folder
	qdir string // the queue's folder
	st   *store.Store
	q    *queue.Queue
	srv  *Server
	addr string
	tls  *tls.Config
}

func start(t testing.TB, cfg Config) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	root := t.TempDir()
	dir := filepath.Join(root, "mail")
	st, err := store.Open(dir, log)
	if err != nil {
		t.Fatal(err)
	}

	sock := filepath.Join(root, "lmtp.sock")
	lmtpLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lsrv := lmtp.NewServer(lmtp.Config{}, accounts, st, log)
	go lsrv.Serve(lmtpLn)
	qdir := filepath.Join(root, "queue")
	q, err := queue.Open(queue.Config{Dir: qdir, Retry: []time.Duration{50 * time.Millisecond}},
		&lmtp.Client{Addr: "unix:" + sock}, log)
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	t.Cleanup(func() {
		q.Close()
		lsrv.Close()
	})

	cfg.Domain, cfg.Hostname = domain, "mx.test"
	srv := New(cfg, accounts, q, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &fixture{dir: dir, qdir: qdir, st: st, q: q, srv: srv,
		addr: ln.Addr().String(), tls: cfg.TLS}
}

// drain waits until the queue has delivered everything it holds.
func (f *fixture) drain(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.q.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d messages: %+v", f.q.Len(), f.q.Records())
		}
		time.Sleep(time.Millisecond)
	}
}

func dial(t testing.TB, f *fixture) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t testing.TB, c *smtp.Client, from string, to []string, msg []byte) error {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// readBack answers the newest message of an account's INBOX once the
// queue has delivered.
func readBack(t testing.TB, f *fixture, accountID string) []byte {
	t.Helper()
	f.drain(t)
	st := f.st
	snap, err := st.Messages(context.Background(), accountID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) == 0 {
		t.Fatal("INBOX is empty")
	}
	file, _, err := st.OpenMessage(context.Background(), accountID, store.Inbox, snap.Messages[len(snap.Messages)-1].UID)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	b, err := io.ReadAll(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadFixture reads a message from testdata, gunzipping .gz files.
func loadFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "mail", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

var traceRE = regexp.MustCompile(`^Return-Path: <[^>]*>\r\nReceived: from [^\r]*\r\n\tby mx\.test with ESMTPS? id ([0-9a-f]{32})(\r\n\tfor <[^>]+>)?;\r\n\t[^\r]+\r\n`)

// splitTrace checks the prepended trace fields and answers the rest.
func splitTrace(t testing.TB, stored []byte) []byte {
	t.Helper()
	loc := traceRE.FindIndex(stored)
	if loc == nil {
		end := min(len(stored), 300)
		t.Fatalf("no trace fields at the start of %q", stored[:end])
	}
	return stored[loc[1]:]
}

// toCRLF is what an SMTP client puts on the wire for a file.
func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

func TestEveryFixtureIsStoredByteForByte(t *testing.T) {
	f := start(t, Config{})
	entries, err := os.ReadDir(filepath.Join("..", "..", "testdata", "mail"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 19 {
		t.Fatalf("only %d fixtures in testdata/mail", len(entries))
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			msg := loadFixture(t, e.Name())
			c := dial(t, f)
			if err := send(t, c, "sender@remote.example", []string{"lina@" + domain}, msg); err != nil {
				t.Fatal(err)
			}
			got := splitTrace(t, readBack(t, f, "acct-lina"))
			if want := toCRLF(msg); !bytes.Equal(got, want) {
				t.Errorf("stored %d bytes differ from the %d sent", len(got), len(want))
			}
		})
	}
}

// rawSession speaks SMTP over a plain connection, for what a well-behaved
// client library would not send.
func rawSession(t *testing.T, addr string, lines string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(conn, lines)
	var out strings.Builder
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		out.WriteString(line)
		if err != nil || strings.HasPrefix(line, "221") {
			break
		}
	}
	return out.String()
}

func TestBareLineFeedsBecomeCRLFAndNothingElseChanges(t *testing.T) {
	f := start(t, Config{})
	long := strings.Repeat("X", 5000)
	body := "Subject: bare\n\n" + long + "\nend\r\n\tmixed\nlast\r\n"
	out := rawSession(t, f.addr, "EHLO client.test\r\nMAIL FROM:<a@remote.example>\r\n"+
		"RCPT TO:<lina@"+domain+">\r\nDATA\r\n"+body+".\r\nQUIT\r\n")
	if !strings.Contains(out, "\r\n250 2.0.0") {
		t.Fatalf("message not accepted:\n%s", out)
	}
	got := string(splitTrace(t, readBack(t, f, "acct-lina")))
	want := "Subject: bare\r\n\r\n" + long + "\r\nend\r\n\tmixed\r\nlast\r\n"
	if got != want {
		t.Errorf("stored %q..., want %q...", got[:40], want[:40])
	}
}

func TestRecipientsAreCheckedAtRCPT(t *testing.T) {
	f := start(t, Config{})
	tests := []struct {
		name     string
		rcpt     string
		code     int
		enhanced smtp.EnhancedCode
	}{
		{"an unknown address is refused as no such mailbox", "nobody@" + domain, 550, smtp.EnhancedCode{5, 1, 1}},
		{"an address on another domain is refused as relaying", "someone@gmail.example", 550, smtp.EnhancedCode{5, 7, 1}},
		{"a directory failure is a temporary error", "broken@" + domain, 451, smtp.EnhancedCode{4, 3, 0}},
		{"a known address in capitals is accepted", "LINA@EGRETAIR.EXAMPLE", 0, smtp.EnhancedCode{}},
		{"postmaster without a domain is accepted", "postmaster", 0, smtp.EnhancedCode{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, f)
			if err := c.Mail("a@remote.example", nil); err != nil {
				t.Fatal(err)
			}
			err := c.Rcpt(tt.rcpt, nil)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("RCPT refused: %v", err)
				}
				return
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != tt.code || se.EnhancedCode != tt.enhanced {
				t.Fatalf("RCPT answered %v, want %d %v", err, tt.code, tt.enhanced)
			}
		})
	}
}

func TestRelayingIsNeverAccepted(t *testing.T) {
	f := start(t, Config{})
	out := rawSession(t, f.addr, "EHLO x\r\nMAIL FROM:<a@"+domain+">\r\n"+
		"RCPT TO:<victim@elsewhere.example>\r\nRCPT TO:<victim@elsewhere.example>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
	if strings.Contains(out, "\r\n250 2.0.0 OK: queued") || strings.Contains(out, "354") {
		t.Fatalf("server took mail for a foreign domain:\n%s", out)
	}
}

func TestMessageForTwoAccountsReachesBoth(t *testing.T) {
	f := start(t, Config{})
	c := dial(t, f)
	msg := []byte("Subject: both\r\n\r\nhello\r\n")
	if err := send(t, c, "a@remote.example", []string{"lina@" + domain, "wangwei@" + domain}, msg); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"acct-lina", "acct-wangwei"} {
		if got := splitTrace(t, readBack(t, f, id)); !bytes.Equal(got, msg) {
			t.Errorf("%s got %q", id, got)
		}
	}
}

func TestCapabilitiesAndSizeLimit(t *testing.T) {
	f := start(t, Config{MaxMessageBytes: 1000})
	c := dial(t, f)
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"8BITMIME", "SMTPUTF8", "SIZE"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("%s not advertised", ext)
		}
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised without a TLS configuration")
	}
	if _, v := c.Extension("SIZE"); v != "1000" {
		t.Errorf("SIZE %q, want 1000", v)
	}
	err := send(t, c, "a@remote.example", []string{"lina@" + domain}, bytes.Repeat([]byte("x\r\n"), 1000))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 {
		t.Errorf("oversized message answered %v, want 552", err)
	}
}

func TestStartTLSWithTheSelfSignedCertificate(t *testing.T) {
	cfg, err := tlsconf.LoadOrCreate("", "", t.TempDir(), "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, Config{TLS: cfg})
	plain := dial(t, f)
	plain.Hello("client.test")
	if ok, _ := plain.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised")
	}
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS after STARTTLS")
	}
	if err := send(t, c, "a@remote.example", []string{"lina@" + domain}, []byte("Subject: tls\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, f, "acct-lina"); !strings.Contains(string(got), "with ESMTPS id") {
		t.Errorf("Received header does not say ESMTPS:\n%s", got)
	}
}

// slowReader hands out its bytes slowly, to keep a transaction open.
type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.r.Read(p[:min(len(p), 64)])
}

func TestShutdownLetsATransactionInFlightFinish(t *testing.T) {
	f := start(t, Config{})
	idle := dial(t, f)
	idle.Hello("idle.test")

	busy := dial(t, f)
	if err := busy.Mail("a@remote.example", nil); err != nil {
		t.Fatal(err)
	}
	busy.Rcpt("lina@"+domain, nil)
	w, err := busy.Data()
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- f.srv.Shutdown(ctx)
	}()
	msg := "Subject: slow\r\n\r\n" + strings.Repeat("line\r\n", 100)
	if _, err := io.Copy(w, slowReader{strings.NewReader(msg), 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("transaction in flight failed during shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if got := splitTrace(t, readBack(t, f, "acct-lina")); string(got) != msg {
		t.Errorf("stored %q", got)
	}
	if _, err := smtp.Dial(f.addr); err == nil {
		t.Error("new connection accepted after Shutdown")
	}
	if err := idle.Noop(); err == nil {
		t.Error("idle connection still open after Shutdown")
	}
}

func TestCRLFReaderWithTinyBuffers(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bare LF becomes CRLF", "a\nb\n", "a\r\nb\r\n"},
		{"CRLF stays", "a\r\nb\r\n", "a\r\nb\r\n"},
		{"a lone CR stays", "a\rb\n", "a\rb\r\n"},
		{"an empty line", "\n\n", "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newCRLFReader(strings.NewReader(tt.in))
			var out bytes.Buffer
			buf := make([]byte, 1)
			for {
				n, err := r.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func BenchmarkSMTPDelivery10KB(b *testing.B) {
	f := start(b, Config{})
	c := dial(b, f)
	msg := []byte("Subject: bench\r\n\r\n" + strings.Repeat(fmt.Sprintf("%070d\r\n", 7), 140))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := send(b, c, "a@remote.example", []string{"lina@" + domain}, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSMTPToMailbox10KB measures the whole path: SMTP into the
// queue, then over LMTP into the store, until the queue is empty.
func BenchmarkSMTPToMailbox10KB(b *testing.B) {
	f := start(b, Config{})
	c := dial(b, f)
	msg := []byte("Subject: bench\r\n\r\n" + strings.Repeat(fmt.Sprintf("%070d\r\n", 7), 140))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := send(b, c, "a@remote.example", []string{"lina@" + domain}, msg); err != nil {
			b.Fatal(err)
		}
		f.drain(b)
	}
}
