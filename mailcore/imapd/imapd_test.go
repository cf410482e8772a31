package imapd

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/lmtp"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/smtpd"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/mailcore/tlsconf"
)

const domain = "egretair.example"

// directory is the in-memory Accounts the tests use in place of the
// directory package.
type directory struct {
	byAddress map[string]mailcore.Account
	passwords map[string]string // login -> password
	down      bool
}

func (d *directory) LookupAddress(_ context.Context, address string) (mailcore.Account, error) {
	if a, ok := d.byAddress[strings.ToLower(address)]; ok {
		return a, nil
	}
	return mailcore.Account{}, mailcore.ErrNoAccount
}

func (d *directory) Authenticate(_ context.Context, username, password string) (mailcore.Account, error) {
	if d.down {
		return mailcore.Account{}, errors.New("database unreachable")
	}
	for _, a := range d.byAddress {
		if (a.Login == username || a.Address == username) && d.passwords[a.Login] == password {
			return a, nil
		}
	}
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

func newDirectory() *directory {
	lina := mailcore.Account{ID: "acct-lina", Address: "lina@" + domain, Login: "lina"}
	wang := mailcore.Account{ID: "acct-wang", Address: "wangwei@" + domain, Login: "wangwei"}
	return &directory{
		byAddress: map[string]mailcore.Account{lina.Address: lina, wang.Address: wang},
		passwords: map[string]string{"lina": "secret-1", "wangwei": "secret-2"},
	}
}

// env is one node in role "all": store, SMTP and IMAP on loopback.
type env struct {
	dir      *directory
	st       *store.Store
	q        *queue.Queue
	mailDir  string
	smtpAddr string
	imapAddr string
	tls      *tls.Config
}

func startEnv(t testing.TB, wrap func(net.Listener) net.Listener) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	data := t.TempDir()
	st, err := store.Open(filepath.Join(data, "mail"), log)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsconf.LoadOrCreate("", "", data, "mail.test")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: newDirectory(), st: st, tls: tlsCfg,
		mailDir: filepath.Join(data, "mail")}

	// SMTP writes into the queue, which delivers over LMTP.
	sock := filepath.Join(data, "lmtp.sock")
	lln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lm := lmtp.NewServer(lmtp.Config{}, e.dir, st, log)
	go lm.Serve(lln)
	q, err := queue.Open(queue.Config{Dir: filepath.Join(data, "queue")},
		&lmtp.Client{Addr: "unix:" + sock}, log)
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	e.q = q
	t.Cleanup(func() {
		q.Close()
		lm.Close()
	})
	sm := smtpd.New(smtpd.Config{Domain: domain, Hostname: "mail.test"}, e.dir, q, log)
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sm.Serve(sln)
	e.smtpAddr = sln.Addr().String()

	im := New(Config{TLS: tlsCfg}, e.dir, st, log)
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.imapAddr = iln.Addr().String()
	if wrap != nil {
		iln = wrap(iln)
	}
	go im.Serve(iln)

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sm.Shutdown(ctx)
		im.Close()
	})
	return e
}

func (e *env) send(t testing.TB, to string, msg []byte) {
	t.Helper()
	c, err := smtp.Dial(e.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("sender@remote.example", []string{to}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	// The queue delivers in the background; the tests look at the
	// mailbox after that.
	deadline := time.Now().Add(10 * time.Second)
	for e.q.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d messages", e.q.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) login(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.imapAddr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("lina", "secret-1").Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

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

func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

var traceRE = regexp.MustCompile(`^Return-Path: <[^>]*>\r\nReceived: [^\r]*\r\n(\t[^\r]*\r\n)+`)

func stripTrace(t testing.TB, b []byte) []byte {
	t.Helper()
	loc := traceRE.FindIndex(b)
	if loc == nil {
		t.Fatalf("no trace fields at the start of %q", b[:min(len(b), 200)])
	}
	return b[loc[1]:]
}

func fixtureNames(t testing.TB) []string {
	entries, err := os.ReadDir(filepath.Join("..", "..", "testdata", "mail"))
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, e := range entries {
		l = append(l, e.Name())
	}
	if len(l) < 19 {
		t.Fatalf("only %d fixtures", len(l))
	}
	return l
}

// deliverFixtures sends every fixture to lina and answers the names in
// UID order.
func deliverFixtures(t testing.TB, e *env) []string {
	names := fixtureNames(t)
	for _, n := range names {
		e.send(t, "lina@"+domain, loadFixture(t, n))
	}
	return names
}

func TestEveryFixtureReadsBackByteForByteOverIMAP(t *testing.T) {
	e := startEnv(t, nil)
	names := deliverFixtures(t, e)
	c := e.login(t, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			uid := imap.UID(i + 1)
			msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{
				UID: true, RFC822Size: true, Flags: true,
				BodySection: []*imap.FetchItemBodySection{whole},
			}).Collect()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("fetch: %v, %d messages", err, len(msgs))
			}
			got := msgs[0].FindBodySection(whole)
			if int64(len(got)) != msgs[0].RFC822Size {
				t.Errorf("RFC822.SIZE %d, body %d bytes", msgs[0].RFC822Size, len(got))
			}
			if want := toCRLF(loadFixture(t, name)); !bytes.Equal(stripTrace(t, got), want) {
				t.Errorf("body differs from the %d bytes sent", len(want))
			}
			if slices.Contains(msgs[0].Flags, imap.FlagSeen) {
				t.Error("BODY.PEEK[] set \\Seen")
			}
		})
	}
}

func TestFetchSectionsEnvelopeAndStructure(t *testing.T) {
	e := startEnv(t, nil)
	e.send(t, "lina@"+domain, loadFixture(t, "attachments.eml"))
	e.send(t, "lina@"+domain, loadFixture(t, "gbk-plain.eml"))
	c := e.login(t, nil)
	c.Select("INBOX", nil).Wait()

	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	part1 := &imap.FetchItemBodySection{Part: []int{1}}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Envelope:      true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{header, part1},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.Envelope.Subject != "工资条 2026年11月" {
		t.Errorf("envelope subject %q", m.Envelope.Subject)
	}
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) < 2 {
		t.Errorf("body structure %#v", m.BodyStructure)
	}
	if h := m.FindBodySection(header); !bytes.HasPrefix(h, []byte("Return-Path:")) || !bytes.HasSuffix(h, []byte("\r\n\r\n")) {
		t.Errorf("BODY[HEADER] = %q", h)
	}
	if p := m.FindBodySection(part1); !bytes.HasPrefix(p, []byte("5ZCE5L2N")) {
		t.Errorf("BODY[1] = %q", p[:min(len(p), 40)])
	}
	if !slices.Contains(m.Flags, imap.FlagSeen) {
		t.Errorf("BODY[1] without PEEK did not report \\Seen: %v", m.Flags)
	}

	msgs, _ = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if got := msgs[0].Envelope.Subject; got != "关于2026年冬春航季航班计划调整的通知" {
		t.Errorf("GBK subject decoded as %q", got)
	}
}

func TestSearch(t *testing.T) {
	e := startEnv(t, nil)
	names := deliverFixtures(t, e)
	uidOf := func(name string) imap.UID {
		return imap.UID(slices.Index(names, name) + 1)
	}
	c := e.login(t, nil)
	c.Select("INBOX", nil).Wait()
	if err := c.Store(imap.UIDSetNum(uidOf("html-only.eml")), &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged, imap.FlagSeen},
	}, nil).Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		criteria imap.SearchCriteria
		want     []string
	}{
		{"a Chinese word finds the GBK-encoded subject",
			imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "冬春航季航班计划调整"}}},
			[]string{"gbk-plain.eml", "utf8-plain-0.eml"}},
		{"a Chinese word finds the Big5-encoded subject",
			imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "會議改期"}}},
			[]string{"big5-plain.eml"}},
		{"a GB18030 subject is found",
			imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "运行控制中心"}}},
			[]string{"gb18030-plain.eml", "utf8-plain-1.eml"}},
		{"a raw 8-bit UTF-8 subject is found",
			imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "RAW 8BIT"}}},
			[]string{"raw-8bit-headers.eml"}},
		{"body text in Big5 is found after decoding",
			imap.SearchCriteria{Body: []string{"互相轉告"}},
			[]string{"big5-plain.eml"}},
		{"FROM matches the decoded display name",
			imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "O'BRIEN"}}},
			[]string{"big5-plain.eml", "utf8-plain-4.eml"}},
		{"text in a forwarded message is found",
			imap.SearchCriteria{Text: []string{"XA8101 delay"}},
			[]string{"forwarded-rfc822.eml", "utf8-plain-4.eml"}},
		{"flagged finds the flagged message",
			imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}},
			[]string{"html-only.eml"}},
		{"larger finds only the big message",
			imap.SearchCriteria{Larger: 1 << 20},
			[]string{"large-6mb.eml.gz"}},
		{"NOT and OR combine",
			imap.SearchCriteria{
				Or:  [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagSeen}}, {Larger: 1 << 20}}},
				Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagFlagged}}},
			},
			[]string{"large-6mb.eml.gz"}},
		{"sent before a date uses the Date field",
			imap.SearchCriteria{SentBefore: time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC)},
			[]string{"alternative.eml", "attachments.eml", "gb18030-plain.eml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := c.UIDSearch(&tt.criteria, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, uid := range data.AllUIDs() {
				got = append(got, names[uid-1])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("found %v, want %v", got, tt.want)
			}
		})
	}

	unseen, err := c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(unseen.AllSeqNums()); n != len(names)-1 {
		t.Errorf("UNSEEN found %d, want %d", n, len(names)-1)
	}
}

func TestIdleHearsOfADelivery(t *testing.T) {
	e := startEnv(t, nil)
	exists := make(chan uint32, 4)
	c := e.login(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages != nil {
				exists <- *data.NumMessages
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, "lina@"+domain, []byte("Subject: while idling\r\n\r\nhi\r\n"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EXISTS within 5 seconds of the delivery")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestAppendCopyMoveExpunge(t *testing.T) {
	e := startEnv(t, nil)
	e.send(t, "lina@"+domain, []byte("Subject: one\r\n\r\n1\r\n"))
	e.send(t, "lina@"+domain, []byte("Subject: two\r\n\r\n2\r\n"))
	var expunged []uint32
	c := e.login(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { expunged = append(expunged, seq) },
	}})

	draft := []byte("Subject: draft\r\n\r\nnot yet\r\n")
	app := c.Append("Drafts", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	app.Write(draft)
	app.Close()
	ad, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Errorf("APPENDUID %+v", ad)
	}
	if err := c.Append("NoSuchBox", 1, nil).Close(); err == nil {
		t.Error("APPEND to a missing mailbox succeeded")
	}

	c.Select("INBOX", nil).Wait()
	cd, err := c.Copy(imap.SeqSetNum(1), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cd.DestUIDs.Nums(); !slices.Equal(got, []imap.UID{1}) {
		t.Errorf("COPYUID dest %v", cd.DestUIDs)
	}
	md, err := c.Move(imap.SeqSetNum(2), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.DestUIDs.String() != "2" {
		t.Errorf("MOVE dest UIDs %v", md.DestUIDs)
	}
	if !slices.Equal(expunged, []uint32{2}) {
		t.Errorf("MOVE reported expunges %v, want [2]", expunged)
	}

	c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	seqs, err := c.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{1}) {
		t.Errorf("EXPUNGE = %v, %v", seqs, err)
	}

	for box, want := range map[string]uint32{"INBOX": 0, "Trash": 2, "Drafts": 1} {
		sd, err := c.Status(box, &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if *sd.NumMessages != want {
			t.Errorf("%s holds %d, want %d", box, *sd.NumMessages, want)
		}
	}
	sd, _ := c.Status("INBOX", &imap.StatusOptions{UIDNext: true}).Wait()
	if sd.UIDNext != 3 {
		t.Errorf("INBOX UIDNEXT %d after expunging all, want 3", sd.UIDNext)
	}
}

func TestMailboxesListAndChange(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(t, nil)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	for box, use := range map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash} {
		if !slices.Contains(attrs[box], use) {
			t.Errorf("%s attrs %v, want %s", box, attrs[box], use)
		}
	}
	if _, ok := attrs["INBOX"]; !ok {
		t.Error("INBOX not listed")
	}

	steps := []struct {
		name string
		run  func() error
	}{
		{"create a nested folder", func() error { return c.Create("Ops/Delays", nil).Wait() }},
		{"subscribe to it", func() error { return c.Subscribe("Ops/Delays").Wait() }},
		{"rename its parent", func() error { return c.Rename("Ops", "Operations", nil).Wait() }},
		{"select the renamed child", func() error { _, err := c.Select("Operations/Delays", nil).Wait(); return err }},
		{"delete the child", func() error { return c.Delete("Operations/Delays").Wait() }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Error("deleting INBOX succeeded")
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE %+v, %v", ns, err)
	}
}

func TestLoginAndAuthenticate(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name    string
		auth    func(c *imapclient.Client) error
		wantErr bool
	}{
		{"LOGIN with the right password works", func(c *imapclient.Client) error { return c.Login("lina", "secret-1").Wait() }, false},
		{"LOGIN by address works", func(c *imapclient.Client) error { return c.Login("lina@"+domain, "secret-1").Wait() }, false},
		{"LOGIN with a wrong password fails", func(c *imapclient.Client) error { return c.Login("lina", "nope").Wait() }, true},
		{"AUTHENTICATE PLAIN works", func(c *imapclient.Client) error {
			return c.Authenticate(sasl.NewPlainClient("", "wangwei", "secret-2"))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := imapclient.DialInsecure(e.imapAddr, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := tt.auth(c); (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
		})
	}

	e.dir.down = true
	c, _ := imapclient.DialInsecure(e.imapAddr, nil)
	defer c.Close()
	err := c.Login("lina", "secret-1").Wait()
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeUnavailable {
		t.Errorf("login with the directory down = %v, want NO [UNAVAILABLE]", err)
	}
}

func TestStartTLSThenLogin(t *testing.T) {
	e := startEnv(t, nil)
	conn, err := net.Dial("tcp", e.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("lina", "secret-1").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// remoteListener makes every accepted connection look as if it came from
// a documentation address (RFC 5737) instead of loopback.
type remoteListener struct{ net.Listener }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 40000}
}

func TestPasswordWithoutTLSIsRefusedFromAnotherHost(t *testing.T) {
	e := startEnv(t, func(ln net.Listener) net.Listener { return remoteListener{ln} })

	c, err := imapclient.DialInsecure(e.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login("lina", "secret-1").Wait()
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodePrivacyRequired {
		t.Fatalf("plaintext LOGIN from a remote peer = %v, want NO [PRIVACYREQUIRED]", err)
	}
	if err := c.Authenticate(sasl.NewPlainClient("", "lina", "secret-1")); err == nil {
		t.Fatal("plaintext AUTHENTICATE from a remote peer succeeded")
	}

	conn, err := net.Dial("tcp", e.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Login("lina", "secret-1").Wait(); err != nil {
		t.Errorf("LOGIN after STARTTLS from a remote peer: %v", err)
	}
}

func TestPlaintextDecision(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		want   bool
	}{
		{"IPv4 loopback may send a password", "127.0.0.1", true},
		{"another loopback address may too", "127.0.0.53", true},
		{"IPv6 loopback may send a password", "::1", true},
		{"a private LAN address may not", "10.1.2.3", false},
		{"a public address may not", "203.0.113.7", false},
		{"an IPv6 address may not", "2001:db8::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeConn{addr: &net.TCPAddr{IP: net.ParseIP(tt.remote), Port: 1}}
			if got := plaintextAllowed(c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if !plaintextAllowed(tls.Server(fakeConn{addr: &net.TCPAddr{IP: net.ParseIP("203.0.113.7")}}, &tls.Config{})) {
		t.Error("a TLS connection from anywhere may send a password")
	}
}

type fakeConn struct {
	net.Conn
	addr net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.addr }

func TestSecondSessionSeesFlagChanges(t *testing.T) {
	e := startEnv(t, nil)
	e.send(t, "lina@"+domain, []byte("Subject: shared\r\n\r\nx\r\n"))
	flags := make(chan []imap.Flag, 4)
	watcher := e.login(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Fetch: func(msg *imapclient.FetchMessageData) {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if f, ok := item.(imapclient.FetchItemDataFlags); ok {
					flags <- f.Flags
				}
			}
		},
	}})
	watcher.Select("INBOX", nil).Wait()
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatal(err)
	}
	other := e.login(t, nil)
	other.Select("INBOX", nil).Wait()
	other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close()
	select {
	case f := <-flags:
		if !slices.Contains(f, imap.FlagAnswered) {
			t.Errorf("flags %v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the idling session did not hear of the flag change")
	}
	idle.Close()
	idle.Wait()
}

func BenchmarkFetchMailbox(b *testing.B) {
	e := startEnv(b, nil)
	msg := loadFixture(b, "attachments.eml")
	for range 50 {
		e.send(b, "lina@"+domain, msg)
	}
	c := e.login(b, nil)
	c.Select("INBOX", nil).Wait()
	opts := &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}
	for b.Loop() {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil || len(msgs) != 50 {
			b.Fatalf("%v, %d messages", err, len(msgs))
		}
	}
}

func TestExaminedMailboxStaysUnchanged(t *testing.T) {
	e := startEnv(t, nil)
	e.send(t, "lina@"+domain, []byte("Subject: look\r\n\r\nx\r\n"))
	c := e.login(t, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Error("BODY[] in an EXAMINEd mailbox set \\Seen")
	}
	err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if err == nil {
		t.Error("STORE in an EXAMINEd mailbox succeeded")
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE of an EXAMINEd mailbox: %v", err)
	}
}
