package submission_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/submission"
	"github.com/egretair/egret/mailcore/tlsconf"
)

const domain = "egretair.example"

// directory stands in for the directory: alice has an alias, bob none.
type directory struct{}

var (
	alice = mailcore.Account{ID: "acct-alice", Address: "alice@" + domain, Login: "alice"}
	bob   = mailcore.Account{ID: "acct-bob", Address: "bob@" + domain, Login: "bob"}
)

func (directory) LookupAddress(_ context.Context, addr string) (mailcore.Account, error) {
	switch strings.ToLower(addr) {
	case alice.Address, "dispatch@" + domain:
		return alice, nil
	case bob.Address:
		return bob, nil
	}
	return mailcore.Account{}, mailcore.ErrNoAccount
}

func (directory) Authenticate(_ context.Context, user, pass string) (mailcore.Account, error) {
	if (user == "alice" || user == alice.Address) && pass == "alice-secret" {
		return alice, nil
	}
	if user == "bob" && pass == "bob-secret" {
		return bob, nil
	}
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

// server is a submission server on loopback over a real queue that is
// not started, so what was accepted stays there to be looked at.
type server struct {
	q        *queue.Queue
	starttls string
	implicit string
}

func start(t *testing.T, perHour int) *server {
	t.Helper()
	tc, err := tlsconf.LoadOrCreate("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queue.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	srv := submission.New(submission.Config{Domain: domain, Hostname: "submit.test",
		TLS: tc, MessagesPerHour: perHour, MaxRecipients: 3}, directory{}, q, nil)
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln1)
	go srv.ServeTLS(ln2)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &server{q: q, starttls: ln1.Addr().String(), implicit: ln2.Addr().String()}
}

var clientTLS = &tls.Config{InsecureSkipVerify: true}

// dial opens a session over STARTTLS or implicit TLS.
func (s *server) dial(t *testing.T, implicit bool) *smtp.Client {
	t.Helper()
	var c *smtp.Client
	var err error
	if implicit {
		c, err = smtp.DialTLS(s.implicit, clientTLS)
	} else {
		c, err = smtp.DialStartTLS(s.starttls, clientTLS)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func message(from string) io.Reader {
	return strings.NewReader("From: " + from + "\r\nTo: someone@remote.test\r\n" +
		"Subject: gate change\r\n\r\nFlight EG101 now leaves from gate 12.\n")
}

// code answers the reply code of an error, 250 for none.
func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	if err != nil {
		return -1
	}
	return 250
}

func send(c *smtp.Client, envFrom, hdrFrom string, to ...string) error {
	if err := c.Mail(envFrom, nil); err != nil {
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
	io.Copy(w, message(hdrFrom))
	return w.Close()
}

func TestSignInAndSend(t *testing.T) {
	s := start(t, 0)
	cases := []struct {
		name     string
		implicit bool
		auth     sasl.Client
	}{
		{"PLAIN over STARTTLS", false, sasl.NewPlainClient("", "alice", "alice-secret")},
		{"LOGIN over STARTTLS", false, sasl.NewLoginClient("alice", "alice-secret")},
		{"PLAIN over implicit TLS", true, sasl.NewPlainClient("", alice.Address, "alice-secret")},
		{"LOGIN over implicit TLS", true, sasl.NewLoginClient("alice", "alice-secret")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.q.Len()
			c := s.dial(t, tc.implicit)
			if err := c.Auth(tc.auth); err != nil {
				t.Fatalf("AUTH: %v", err)
			}
			if err := send(c, alice.Address, "Alice <alice@"+domain+">",
				"someone@remote.test", bob.Address); err != nil {
				t.Fatalf("send: %v", err)
			}
			if s.q.Len() != before+1 {
				t.Fatalf("queue holds %d messages, want %d", s.q.Len(), before+1)
			}
		})
	}
	recs := s.q.Records()
	rec := recs[len(recs)-1]
	if rec.From != alice.Address || len(rec.Recipients) != 2 ||
		rec.Recipients[0].Address != "someone@remote.test" || rec.Recipients[1].Account != bob.ID {
		t.Errorf("queued record %+v", rec)
	}
	f, err := s.q.Message(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	for _, want := range []string{"Received: from ", "with ESMTPSA", "Message-ID: <", "Date: ",
		"From: Alice <alice@" + domain + ">\r\n", "gate 12.\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("queued message lacks %q:\n%s", want, b)
		}
	}
}

func TestRefusals(t *testing.T) {
	s := start(t, 0)
	signedIn := func(t *testing.T) *smtp.Client {
		c := s.dial(t, false)
		if err := c.Auth(sasl.NewPlainClient("", "alice", "alice-secret")); err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		run  func(t *testing.T) error
		want int
	}{
		{"a wrong password gets 535", func(t *testing.T) error {
			return s.dial(t, false).Auth(sasl.NewPlainClient("", "alice", "wrong"))
		}, 535},
		{"a wrong password over LOGIN gets 535", func(t *testing.T) error {
			return s.dial(t, true).Auth(sasl.NewLoginClient("bob", "alice-secret"))
		}, 535},
		{"sending without signing in gets 530", func(t *testing.T) error {
			return send(s.dial(t, false), alice.Address, alice.Address, "someone@remote.test")
		}, 530},
		{"relaying without signing in gets 530", func(t *testing.T) error {
			return send(s.dial(t, false), "x@elsewhere.test", "x@elsewhere.test", "y@remote.test")
		}, 530},
		{"MAIL FROM another user gets 553", func(t *testing.T) error {
			return send(signedIn(t), bob.Address, bob.Address, "someone@remote.test")
		}, 553},
		{"MAIL FROM a foreign address gets 553", func(t *testing.T) error {
			return send(signedIn(t), "ceo@bank.test", "ceo@bank.test", "someone@remote.test")
		}, 553},
		{"a From field of another user gets 553", func(t *testing.T) error {
			return send(signedIn(t), alice.Address, "Bob <"+bob.Address+">", "someone@remote.test")
		}, 553},
		{"the null sender gets 553", func(t *testing.T) error {
			return send(signedIn(t), "", alice.Address, "someone@remote.test")
		}, 553},
		{"an alias of one's own is allowed", func(t *testing.T) error {
			return send(signedIn(t), "dispatch@"+domain, "Dispatch <dispatch@"+domain+">", "someone@remote.test")
		}, 250},
		{"an unknown local recipient gets 550", func(t *testing.T) error {
			return send(signedIn(t), alice.Address, alice.Address, "ghost@"+domain)
		}, 550},
		{"a fourth recipient gets 452", func(t *testing.T) error {
			return send(signedIn(t), alice.Address, alice.Address,
				"a@remote.test", "b@remote.test", "c@remote.test", "d@remote.test")
		}, 452},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(tc.run(t)); got != tc.want {
				t.Errorf("reply %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSendRateLimit(t *testing.T) {
	s := start(t, 2)
	c := s.dial(t, false)
	if err := c.Auth(sasl.NewPlainClient("", "alice", "alice-secret")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := send(c, alice.Address, alice.Address, "someone@remote.test"); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	err := send(c, alice.Address, alice.Address, "someone@remote.test")
	if got := code(err); got != 450 {
		t.Fatalf("third message in the hour: reply %d (%v), want 450", got, err)
	}
	// Another account has its own count.
	c2 := s.dial(t, true)
	if err := c2.Auth(sasl.NewPlainClient("", "bob", "bob-secret")); err != nil {
		t.Fatal(err)
	}
	if err := send(c2, bob.Address, bob.Address, "someone@remote.test"); err != nil {
		t.Fatalf("bob's first message: %v", err)
	}
}

// pipeListener hands the server connections whose peer is not on
// loopback, as a client on the network would be.
type pipeListener struct {
	conns chan net.Conn
}

func (l *pipeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *pipeListener) Close() error   { return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

func TestNoPasswordInPlainTextFromTheNetwork(t *testing.T) {
	tc, err := tlsconf.LoadOrCreate("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queue.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	srv := submission.New(submission.Config{Domain: domain, TLS: tc}, directory{}, q, nil)
	ln := &pipeListener{conns: make(chan net.Conn, 1)}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	client, server := net.Pipe()
	ln.conns <- server
	c := smtp.NewClient(client)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH advertised on a plain-text connection from the network")
	}
	err = c.Auth(sasl.NewPlainClient("", "alice", "alice-secret"))
	if got := code(err); got != 538 && got != 502 && got != -1 {
		t.Errorf("AUTH in plain text: %v, want a refusal", err)
	}
	if q.Len() != 0 || err == nil {
		t.Error("a password was taken in plain text")
	}
}
