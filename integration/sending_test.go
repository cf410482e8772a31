package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore/tlsconf"
)

// remoteDomain is the other company's domain, served by the test's own
// DNS server and MX, both on loopback.
const remoteDomain = "partner.test"

// testDNS answers MX for remoteDomain, A 127.0.0.1 for its MX host, and
// the TXT records the test puts in txt.
type testDNS struct {
	addr string
	mu   sync.Mutex
	txt  map[string]string
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	z := &testDNS{txt: map[string]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
		z.mu.Lock()
		txt := z.txt[name]
		z.mu.Unlock()
		switch {
		case q.Qtype == dns.TypeMX && name == remoteDomain:
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: 10, Mx: "mx." + remoteDomain + "."})
		case q.Qtype == dns.TypeA && name == "mx."+remoteDomain:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case q.Qtype == dns.TypeTXT && txt != "":
			var parts []string
			for len(txt) > 0 {
				n := min(len(txt), 255)
				parts, txt = append(parts, txt[:n]), txt[n:]
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: parts})
		case name == remoteDomain || name == "mx."+remoteDomain:
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return z
}

func (z *testDNS) lookupTXT(name string) ([]string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, z.addr)
	}}
	return r.LookupTXT(context.Background(), name)
}

// testMX is the remote domain's MX: a go-smtp server with STARTTLS.
type testMX struct {
	port int
	got  chan []byte
}

type testMXSession struct{ mx *testMX }

func (s testMXSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s testMXSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s testMXSession) Reset()                               {}
func (s testMXSession) Logout() error                        { return nil }
func (s testMXSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err == nil {
		s.mx.got <- b
	}
	return err
}

func startMX(t *testing.T) *testMX {
	t.Helper()
	tc, err := tlsconf.LoadOrCreate("", "", t.TempDir(), "mx."+remoteDomain)
	if err != nil {
		t.Fatal(err)
	}
	m := &testMX{got: make(chan []byte, 4)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return testMXSession{m}, nil
	}))
	srv.Domain = "mx." + remoteDomain
	srv.TLSConfig = tc
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

// makeUser creates a user through the API, sets its password with the
// CLI and answers its address.
func makeUser(t *testing.T, n *node, login, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"login": login, "display_name": login})
	status, resp, err := n.api(http.MethodPost, "/api/v1/users", body)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /api/v1/users: %d %v %s", status, err, resp)
	}
	if _, err := n.egret(password+"\n", "user", "passwd", login, "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	list := n.getJSON(t, "/api/v1/users?login="+login)
	users, _ := list["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("user %s not found: %v", login, list)
	}
	acct, _ := users[0].(map[string]any)["account"].(map[string]any)
	addr, _ := acct["address"].(string)
	if addr == "" {
		t.Fatalf("user %s has no address: %v", login, users[0])
	}
	return addr
}

func TestSubmissionSendsOutSignedAndDeliversLocally(t *testing.T) {
	zone := startDNS(t)
	mx := startMX(t)
	data := filepath.Join(t.TempDir(), "data")

	// A DKIM key before the start, as an operator would make it.
	cmd := exec.Command(egretBin, "dkim", "keygen", mailDomain, "--selector", "s1")
	cmd.Env = append(environWithoutEgret(), "EGRET_NODE_DATA_DIR="+data, "EGRET_MAIL_DOMAIN="+mailDomain)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("egret dkim keygen: %v\n%s", err, out)
	}
	rec := string(out)
	i := strings.Index(rec, "IN TXT ")
	if i < 0 || !strings.Contains(rec, "s1._domainkey."+mailDomain+".") {
		t.Fatalf("keygen printed no TXT record:\n%s", out)
	}
	txt := strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(rec[i+len("IN TXT "):]), `" "`, ""), `"`, "")
	zone.txt["s1._domainkey."+mailDomain] = txt

	n := startNodeEnv(t, dirtest.URL(t, "sqlite"),
		"EGRET_NODE_DATA_DIR="+data,
		"EGRET_OUTBOUND_RESOLVER="+zone.addr,
		"EGRET_OUTBOUND_PORT="+itoa(mx.port))
	sender := makeUser(t, n, "submitter", "submit-secret-1")
	reader := makeUser(t, n, "reader", "reader-secret-1")

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	py := exec.CommandContext(ctx, "python3", filepath.Join(repoRoot, "integration/clients/submit.py"),
		n.submitAddr, "submitter", "submit-secret-1", sender, "ops@"+remoteDomain, reader)
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("submit.py: %v\n%s", err, out)
	}

	// The remote copy: at the test MX, signed, and the signature holds.
	select {
	case b := <-mx.got:
		if !bytes.Contains(b, []byte("<submit-roundtrip@client.test>")) {
			t.Fatalf("the MX got another message:\n%s", b)
		}
		vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(b), &msgdkim.VerifyOptions{LookupTXT: zone.lookupTXT})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("DKIM verification: %v %+v\n%s", err, vs, b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the remote MX got nothing within 30s")
	}

	// The local copy: in the reader's INBOX.
	deadline := time.Now().Add(30 * time.Second)
	for !inInbox(t, data, "<submit-roundtrip@client.test>") {
		if time.Now().After(deadline) {
			t.Fatal("the local recipient's INBOX never got the message")
		}
		time.Sleep(100 * time.Millisecond)
	}

	noRelay(t, n, data)
	n.stop(t)
}

// inInbox reports whether some INBOX under data holds a message with the
// Message-ID.
func inInbox(t *testing.T, data, msgid string) bool {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(data, "mail", "accounts", "*", "mailboxes", "INBOX", sub, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil && bytes.Contains(b, []byte("Message-ID: "+msgid)) {
				return true
			}
		}
	}
	return false
}

// noRelay tries to relay through every listener of the node.
func noRelay(t *testing.T, n *node, data string) {
	t.Helper()

	// The MX port takes mail for the local domain only.
	c, err := smtp.Dial(n.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Mail("spammer@elsewhere.test", nil)
	if err == nil {
		err = c.Rcpt("victim@"+remoteDomain, nil)
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("MX port: relay to %s answered %v, want 550", remoteDomain, err)
	}
	c.Close()

	// Both submission ports want a sign-in first.
	for _, addr := range []string{n.submitAddr, n.submitTLSAddr} {
		var c *smtp.Client
		if addr == n.submitTLSAddr {
			c, err = smtp.DialTLS(addr, insecureTLS())
		} else {
			c, err = smtp.Dial(addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		err = c.Mail("spammer@elsewhere.test", nil)
		if !errors.As(err, &se) || se.Code != 530 {
			t.Errorf("submission %s: MAIL without AUTH answered %v, want 530", addr, err)
		}
		c.Close()
	}

	// LMTP listens on a socket in the data folder, and a TCP address
	// off loopback is refused by the configuration check.
	if fi, err := os.Stat(filepath.Join(data, "lmtp.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("LMTP is not on its unix socket: %v", err)
	}
	cmd := exec.Command(egretBin, "queue", "list")
	cmd.Env = append(environWithoutEgret(), "EGRET_NODE_DATA_DIR="+t.TempDir(), "EGRET_LMTP_ADDR=0.0.0.0:2424")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "lmtp.addr") {
		t.Errorf("lmtp.addr on every interface was accepted: %v\n%s", err, out)
	}
}

// insecureTLS trusts the node's self-signed certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}

// itoa writes a port number.
func itoa(n int) string { return strconv.Itoa(n) }
