package imapproxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/imapd"
	"github.com/egretair/egret/mailcore/peer"
	"github.com/egretair/egret/mailcore/store"
)

const proxySecret = "cluster-secret-1"

// directory is the in-memory Accounts of the tests.
type directory struct{}

var lina = mailcore.Account{ID: "acct-lina", Address: "lina@egretair.example", Login: "lina"}

func (directory) LookupAddress(_ context.Context, address string) (mailcore.Account, error) {
	if strings.EqualFold(address, lina.Address) {
		return lina, nil
	}
	return mailcore.Account{}, mailcore.ErrNoAccount
}

func (directory) Authenticate(_ context.Context, user, pass string) (mailcore.Account, error) {
	if (user == lina.Login || user == lina.Address) && pass == "secret-1" {
		return lina, nil
	}
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

// tokenDirectory is directory that also takes the access token
// linaToken for lina.
type tokenDirectory struct{ directory }

const linaToken = "token-for-lina-1"

func (tokenDirectory) AuthenticateToken(_ context.Context, user, token string) (mailcore.Account, error) {
	if token == linaToken && (user == "" || user == lina.Login || user == lina.Address) {
		return lina, nil
	}
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

// lockGuard locks one user out and counts the failures it is told of.
type lockGuard struct {
	locked string
	mu     sync.Mutex
	failed int
}

func (g *lockGuard) Check(_ context.Context, user, _ string) (time.Duration, error) {
	if user == g.locked {
		return 0, mailcore.ErrLocked
	}
	return 0, nil
}

func (g *lockGuard) Failed(context.Context, string, string) {
	g.mu.Lock()
	g.failed++
	g.mu.Unlock()
}

func (g *lockGuard) Succeeded(context.Context, string, string) {}

func (g *lockGuard) failures() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed
}

// cluster is one back (a real imapd over a real store) and one front.
type cluster struct {
	back      *imapd.Server
	backAddr  string
	frontAddr string
	front     *Server
	peers     *peer.Peers
}

func startCluster(t *testing.T, frontSecret string) *cluster {
	t.Helper()
	return startClusterWith(t, frontSecret, directory{}, nil)
}

// startClusterWith is startCluster with the accounts and the guard
// both the back and the front use, so that the back, asked directly,
// answers as a single node with that configuration would.
func startClusterWith(t *testing.T, frontSecret string, accounts mailcore.Accounts, guard mailcore.LoginGuard) *cluster {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(filepath.Join(t.TempDir(), "mail"), log)
	if err != nil {
		t.Fatal(err)
	}
	back := imapd.New(imapd.Config{Guard: guard, Proxy: &imapd.ProxyLogin{
		Identity: "egret-front",
		Secret:   proxySecret,
		Sources:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}}, accounts, st, log)
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go back.Serve(bln)
	t.Cleanup(func() { back.Close() })

	c := &cluster{back: back, backAddr: bln.Addr().String()}
	c.peers = peer.New(peer.Config{Failures: 1, OpenFor: time.Hour},
		[]peer.Peer{{Name: "back-1"}}, log, nil)
	c.front = New(Config{
		Guard:  guard,
		HomeOf: func(string) string { return "back-1" },
		BackAddr: func(p string) (string, bool) {
			return c.backAddr, p == "back-1"
		},
		Breakers:      c.peers,
		ProxyIdentity: "egret-front",
		ProxySecret:   frontSecret,
		DialTimeout:   2 * time.Second,
	}, accounts, log)
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go c.front.Serve(fln)
	t.Cleanup(func() { c.front.Close() })
	c.frontAddr = fln.Addr().String()
	return c
}

// talk sends raw command lines to addr and answers every line read
// until the tagged reply to the last one (see talkOn).
func talk(t *testing.T, addr string, cmds ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return talkOn(t, c, cmds...)
}

// talkOn is talk on a connection, which it closes. After a
// continuation request ("+ ...") the next entry is sent as the
// client's response, untagged; every other entry is a command, tagged
// T and its index.
func talkOn(t *testing.T, c net.Conn, cmds ...string) []string {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	greet, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{strings.TrimSpace(greet)}
	tag, cont := "", false
	for i, cmd := range cmds {
		if cont {
			fmt.Fprintf(c, "%s\r\n", cmd)
		} else {
			tag = fmt.Sprintf("T%d", i)
			fmt.Fprintf(c, "%s %s\r\n", tag, cmd)
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", cmd, err)
			}
			l = strings.TrimSpace(l)
			lines = append(lines, l)
			cont = l == "+" || strings.HasPrefix(l, "+ ")
			if cont || strings.HasPrefix(l, tag+" ") {
				break
			}
		}
	}
	return lines
}

func plain(authz, authc, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
}

func TestClientsSeeTheSameCapabilities(t *testing.T) {
	c := startCluster(t, proxySecret)
	for _, tc := range []struct {
		name string
		cmds []string
	}{
		{"greeting and CAPABILITY before sign-in", []string{"CAPABILITY"}},
		{"capabilities after LOGIN", []string{"LOGIN lina secret-1", "CAPABILITY"}},
		{"capabilities after AUTHENTICATE PLAIN",
			[]string{"AUTHENTICATE PLAIN " + plain("", "lina", "secret-1"), "CAPABILITY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := talk(t, c.backAddr, tc.cmds...)
			viaFront := talk(t, c.frontAddr, tc.cmds...)
			if strings.Join(direct, "\n") != strings.Join(viaFront, "\n") {
				t.Fatalf("single node answered\n%s\nfront answered\n%s",
					strings.Join(direct, "\n"), strings.Join(viaFront, "\n"))
			}
		})
	}
}

func TestSessionThroughFront(t *testing.T) {
	c := startCluster(t, proxySecret)

	// A second session (through the front) IDLEs on INBOX and must
	// hear of the message the first one appends.
	exists := make(chan uint32, 4)
	idler, err := imapclient.DialInsecure(c.frontAddr, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer idler.Close()
	if err := idler.Login("lina", "secret-1").Wait(); err != nil {
		t.Fatalf("login through the front: %v", err)
	}
	if _, err := idler.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	idle, err := idler.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}

	cl, err := imapclient.DialInsecure(c.frontAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Authenticate(saslPlain("lina", "secret-1")); err != nil {
		t.Fatalf("AUTHENTICATE through the front: %v", err)
	}
	msg := "From: wangwei@egretair.example\r\nSubject: crew roster\r\n\r\nRoster attached.\r\n"
	app := cl.Append("INBOX", int64(len(msg)), nil)
	app.Write([]byte(msg))
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}

	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("IDLE reported %d messages, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("IDLE through the front heard of no new message")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE DONE: %v", err)
	}

	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	bs := &imap.FetchItemBodySection{}
	msgs, err := cl.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Envelope: true, BodySection: []*imap.FetchItemBodySection{bs}}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(msgs) != 1 || msgs[0].Envelope.Subject != "crew roster" ||
		string(msgs[0].FindBodySection(bs)) != msg {
		t.Fatalf("FETCH through the front answered %+v", msgs)
	}
	if err := cl.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
}

func TestFrontRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret string
		login  string
		down   bool
		want   string
	}{
		{"a wrong password is refused by the front", proxySecret,
			"LOGIN lina wrong", false, "T0 NO [AUTHENTICATIONFAILED]"},
		{"a back that is down gives UNAVAILABLE", proxySecret,
			"LOGIN lina secret-1", true, "T0 NO [UNAVAILABLE]"},
		{"a front with the wrong proxy secret gets UNAVAILABLE", "not-the-secret",
			"LOGIN lina secret-1", false, "T0 NO [UNAVAILABLE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.secret)
			if tc.down {
				c.back.Close()
			}
			lines := talk(t, c.frontAddr, tc.login)
			if got := lines[len(lines)-1]; !strings.HasPrefix(got, tc.want) {
				t.Fatalf("front answered %q, want %q", got, tc.want)
			}
			if tc.down {
				// The failed call opened the breaker: the next
				// login is refused without trying the back.
				if st := c.peers.State("back-1"); st != "open" {
					t.Fatalf("breaker %q after a failed call, want open", st)
				}
				if _, err := c.peers.Allow("back-1"); !errors.Is(err, peer.ErrUnavailable) {
					t.Fatalf("Allow = %v", err)
				}
				lines := talk(t, c.frontAddr, tc.login)
				if got := lines[len(lines)-1]; !strings.HasPrefix(got, tc.want) {
					t.Fatalf("second login answered %q", got)
				}
			}
		})
	}
}

func TestBackTakesProxyLoginOnlyWithSecret(t *testing.T) {
	c := startCluster(t, proxySecret)
	for _, tc := range []struct {
		name, creds, want string
	}{
		{"the right secret signs the account in",
			plain(lina.Address, "egret-front", proxySecret), "T0 OK"},
		{"a wrong secret is refused",
			plain(lina.Address, "egret-front", "guess"), "T0 NO [AUTHENTICATIONFAILED]"},
		{"a user's own password does not act for another",
			plain(lina.Address, "lina", "secret-1"), "T0 NO [AUTHENTICATIONFAILED]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := talk(t, c.backAddr, "AUTHENTICATE PLAIN "+tc.creds)
			if got := lines[len(lines)-1]; !strings.HasPrefix(got, tc.want) {
				t.Fatalf("back answered %q, want %q", got, tc.want)
			}
		})
	}
}

// saslPlain is a PLAIN client without an authorization identity.
type saslPlainClient struct{ user, pass string }

func saslPlain(user, pass string) saslPlainClient { return saslPlainClient{user, pass} }

func (p saslPlainClient) Start() (string, []byte, error) {
	return "PLAIN", []byte("\x00" + p.user + "\x00" + p.pass), nil
}

func (p saslPlainClient) Next([]byte) ([]byte, error) {
	return nil, errors.New("unexpected challenge")
}

func oauthBearer(user, token string) string {
	authz := ""
	if user != "" {
		authz = "a=" + user
	}
	return base64.StdEncoding.EncodeToString(
		[]byte("n," + authz + ",\x01auth=Bearer " + token + "\x01\x01"))
}

func xoauth2(user, token string) string {
	return base64.StdEncoding.EncodeToString(
		[]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

// TestTokensAsOnASingleNode runs OAUTHBEARER and XOAUTH2 exchanges
// against imapd and through the front, both with accounts that take
// tokens, and requires the same lines from both.
func TestTokensAsOnASingleNode(t *testing.T) {
	guard := &lockGuard{locked: lina.Address}
	c := startClusterWith(t, proxySecret, tokenDirectory{}, guard)
	dummy := base64.StdEncoding.EncodeToString([]byte{0x01})
	for _, tc := range []struct {
		name string
		cmds []string
		want string
		// status is the error status the challenge must carry, if
		// any.
		status string
	}{
		{"greeting and CAPABILITY offer the token mechanisms",
			[]string{"CAPABILITY"}, "T0 OK", ""},
		{"OAUTHBEARER with an initial response signs in",
			[]string{"AUTHENTICATE OAUTHBEARER " + oauthBearer("lina", linaToken), "CAPABILITY"},
			"T1 OK", ""},
		{"OAUTHBEARER naming no user, after an empty challenge",
			[]string{"AUTHENTICATE OAUTHBEARER", oauthBearer("", linaToken), "SELECT INBOX"},
			"T2 OK", ""},
		{"XOAUTH2 signs in",
			[]string{"authenticate xoauth2 " + xoauth2("lina", linaToken), "SELECT INBOX"},
			"T1 OK", ""},
		{"a bad OAUTHBEARER token gets the error challenge, then NO",
			[]string{"AUTHENTICATE OAUTHBEARER " + oauthBearer("lina", "forged"), dummy},
			"T0 NO [AUTHENTICATIONFAILED]", "invalid_token"},
		{"a bad XOAUTH2 token gets the error challenge, then NO",
			[]string{"AUTHENTICATE XOAUTH2 " + xoauth2("lina", "forged"), ""},
			"T0 NO [AUTHENTICATIONFAILED]", "401"},
		{"a token is not taken for another user",
			[]string{"AUTHENTICATE XOAUTH2 " + xoauth2("postmaster", linaToken), ""},
			"T0 NO [AUTHENTICATIONFAILED]", "401"},
		{"a locked-out user is refused with the right token",
			[]string{"AUTHENTICATE OAUTHBEARER " + oauthBearer(lina.Address, linaToken), dummy},
			"T0 NO [AUTHENTICATIONFAILED]", "invalid_token"},
		{"the client may cancel",
			[]string{"AUTHENTICATE XOAUTH2", "*"}, "T0 BAD", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := talk(t, c.backAddr, tc.cmds...)
			viaFront := talk(t, c.frontAddr, tc.cmds...)
			if strings.Join(direct, "\n") != strings.Join(viaFront, "\n") {
				t.Fatalf("single node answered\n%s\nfront answered\n%s",
					strings.Join(direct, "\n"), strings.Join(viaFront, "\n"))
			}
			if !strings.Contains(viaFront[0], " AUTH=OAUTHBEARER AUTH=XOAUTH2 ") {
				t.Fatalf("greeting %q offers no token mechanisms", viaFront[0])
			}
			if got := viaFront[len(viaFront)-1]; !strings.HasPrefix(got, tc.want) {
				t.Fatalf("front answered %q, want %q", got, tc.want)
			}
			if tc.status == "" {
				return
			}
			var status struct{ Status string }
			for _, l := range viaFront {
				if blob, ok := strings.CutPrefix(l, "+ "); ok {
					raw, _ := base64.StdEncoding.DecodeString(blob)
					json.Unmarshal(raw, &status)
				}
			}
			if status.Status != tc.status {
				t.Fatalf("error challenge status %q, want %q (%q)", status.Status, tc.status, viaFront)
			}
		})
	}

	// A bad token counts with the front's guard as a wrong password.
	before := guard.failures()
	talk(t, c.frontAddr, "AUTHENTICATE OAUTHBEARER "+oauthBearer("lina", "forged"), dummy)
	if got := guard.failures(); got != before+1 {
		t.Fatalf("guard told of %d failures for a bad token, want 1", got-before)
	}
}

// pipeListener hands out the server ends of in-memory connections,
// whose peer is neither TCP nor a Unix socket: to a server they are
// clients from afar, without TLS.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial answers the client end of a new connection.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func TestTokensNotTakenFromAfarWithoutTLS(t *testing.T) {
	c := startClusterWith(t, proxySecret, tokenDirectory{}, nil)
	backLn, frontLn := newPipeListener(), newPipeListener()
	go c.back.Serve(backLn)
	go c.front.Serve(frontLn)
	for _, tc := range []struct {
		name string
		cmds []string
		want string
	}{
		{"no token mechanism is offered", []string{"CAPABILITY"}, "T0 OK"},
		{"a token is refused before it is checked",
			[]string{"AUTHENTICATE OAUTHBEARER " + oauthBearer("lina", linaToken)},
			"T0 NO [PRIVACYREQUIRED]"},
		{"as is one without an initial response",
			[]string{"AUTHENTICATE XOAUTH2"}, "T0 NO [PRIVACYREQUIRED]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := talkOn(t, backLn.dial(), tc.cmds...)
			viaFront := talkOn(t, frontLn.dial(), tc.cmds...)
			if strings.Join(direct, "\n") != strings.Join(viaFront, "\n") {
				t.Fatalf("single node answered\n%s\nfront answered\n%s",
					strings.Join(direct, "\n"), strings.Join(viaFront, "\n"))
			}
			if strings.Contains(viaFront[0], "OAUTHBEARER") || strings.Contains(viaFront[0], "XOAUTH2") {
				t.Fatalf("greeting %q offers a token mechanism without TLS", viaFront[0])
			}
			if got := viaFront[len(viaFront)-1]; !strings.HasPrefix(got, tc.want) {
				t.Fatalf("front answered %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTokenSessionThroughFront(t *testing.T) {
	c := startClusterWith(t, proxySecret, tokenDirectory{}, nil)
	cl, err := imapclient.DialInsecure(c.frontAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = cl.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
		Username: lina.Address, Token: linaToken}))
	if err != nil {
		t.Fatalf("AUTHENTICATE OAUTHBEARER through the front: %v", err)
	}
	msg := "From: wangwei@egretair.example\r\nSubject: gate change\r\n\r\nGate 12.\r\n"
	app := cl.Append("INBOX", int64(len(msg)), nil)
	app.Write([]byte(msg))
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	sel, err := cl.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("SELECT INBOX through the front: %v, %+v", err, sel)
	}
	if err := cl.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
}
