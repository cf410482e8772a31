package outbound_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/egretair/egret/mailcore/dkim"
	"github.com/egretair/egret/mailcore/dsn"
	"github.com/egretair/egret/mailcore/outbound"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/tlsconf"
)

const localDomain = "egretair.example"

// zone is a DNS server on loopback answering from maps; the tests' only
// resolver.
type zone struct {
	addr string
	mu   sync.Mutex
	mx   map[string][]*net.MX
	a    map[string]bool
	txt  map[string]string
}

// startZone serves a zone on a loopback UDP port until the test ends.
func startZone(t *testing.T) *zone {
	t.Helper()
	z := &zone{mx: map[string][]*net.MX{}, a: map[string]bool{}, txt: map[string]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(z.answer)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return z
}

// answer answers one query: MX, A (always 127.0.0.1) and TXT records.
func (z *zone) answer(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	known := len(z.mx[name]) > 0 || z.a[name] || z.txt[name] != ""
	switch q.Qtype {
	case dns.TypeMX:
		hdr.Rrtype = dns.TypeMX
		for _, mx := range z.mx[name] {
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
	case dns.TypeA:
		if z.a[name] {
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		}
	case dns.TypeTXT:
		if v := z.txt[name]; v != "" {
			hdr.Rrtype = dns.TypeTXT
			var parts []string
			for len(v) > 0 {
				n := min(len(v), 255)
				parts = append(parts, v[:n])
				v = v[n:]
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: parts})
		}
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// lookupTXT asks the zone for TXT records, as a verifier would.
func (z *zone) lookupTXT(name string) ([]string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, z.addr)
	}}
	return r.LookupTXT(context.Background(), name)
}

// received is one message the test MX took.
type received struct {
	from string
	to   []string
	data []byte
	tls  bool
}

// mx is a real SMTP server on loopback standing in for a remote domain's
// MX host.
type mx struct {
	port int
	mu   sync.Mutex
	// refuse, when set, answers RCPT for an address with an error.
	refuse func(to string) error
	got    []received
	ch     chan received
}

// startMX serves SMTP with STARTTLS on a loopback port.
func startMX(t *testing.T) *mx {
	t.Helper()
	tc, err := tlsconf.LoadOrCreate("", "", t.TempDir(), "mx.remote.test")
	if err != nil {
		t.Fatal(err)
	}
	m := &mx{ch: make(chan received, 16)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mxSession{mx: m, conn: c}, nil
	}))
	srv.Domain = "mx.remote.test"
	srv.TLSConfig = tc
	srv.EnableSMTPUTF8 = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *mx) setRefuse(f func(string) error) {
	m.mu.Lock()
	m.refuse = f
	m.mu.Unlock()
}

// wait answers the next message the MX took.
func (m *mx) wait(t *testing.T) received {
	t.Helper()
	select {
	case r := <-m.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the test MX got no message within 10s")
	}
	return received{}
}

type mxSession struct {
	mx   *mx
	conn *smtp.Conn
	cur  received
}

func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	_, tls := s.conn.TLSConnectionState()
	s.cur = received{from: from, tls: tls}
	return nil
}

func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mx.mu.Lock()
	refuse := s.mx.refuse
	s.mx.mu.Unlock()
	if refuse != nil {
		if err := refuse(to); err != nil {
			return err
		}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.mx.mu.Lock()
	s.mx.got = append(s.mx.got, s.cur)
	s.mx.mu.Unlock()
	s.mx.ch <- s.cur
	return nil
}

func (s *mxSession) Reset()        {}
func (s *mxSession) Logout() error { return nil }

// localBox records what the router hands to the local transport, in
// place of LMTP and the store (tested in their own packages).
type localBox struct {
	ch chan localMsg
}

type localMsg struct {
	d    queue.Delivery
	data []byte
}

func (l *localBox) Deliver(_ context.Context, d queue.Delivery, body io.Reader) []error {
	b, err := io.ReadAll(body)
	out := make([]error, len(d.Recipients))
	for i := range out {
		out[i] = err
	}
	if err == nil {
		l.ch <- localMsg{d: d, data: b}
	}
	return out
}

// clock is a time the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// rig is a queue routed by outbound to the test MX and a local box.
type rig struct {
	q     *queue.Queue
	zone  *zone
	mx    *mx
	local *localBox
	clock *clock
}

// newRig makes the rig; keys may be nil.
func newRig(t *testing.T, retry []time.Duration, keys *dkim.Keys) *rig {
	t.Helper()
	r := &rig{zone: startZone(t), mx: startMX(t), local: &localBox{ch: make(chan localMsg, 16)},
		clock: &clock{now: time.Now()}}
	r.zone.mx["remote.test"] = []*net.MX{{Host: "mx.remote.test", Pref: 10}}
	r.zone.a["mx.remote.test"] = true
	remote := outbound.NewRemote(outbound.Config{
		Hostname: "egret.test",
		Resolver: r.zone.addr,
		Port:     r.mx.port,
		Keys:     keys,
	}, nil)
	router := &outbound.Router{
		IsLocal: func(d string) bool { return d == localDomain },
		Local:   r.local,
		Remote:  remote,
	}
	q, err := queue.Open(queue.Config{
		Dir:            t.TempDir(),
		Retry:          retry,
		AttemptTimeout: 20 * time.Second,
		Now:            r.clock.Now,
	}, router, nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Notifier = dsn.New(dsn.Config{Hostname: "egret.test",
		From: "postmaster@" + localDomain, Now: r.clock.Now}, q, nil)
	q.Start()
	t.Cleanup(func() { q.Close() })
	r.q = q
	return r
}

var nextID int

// send enqueues a message from alice to the recipients.
func (r *rig) send(t *testing.T, from string, to ...string) []byte {
	t.Helper()
	nextID++
	msg := []byte("From: Alice <alice@" + localDomain + ">\r\n" +
		"To: " + strings.Join(to, ", ") + "\r\n" +
		"Subject: crew roster " + strconv.Itoa(nextID) + "\r\n" +
		"Message-ID: <roster-" + strconv.Itoa(nextID) + "@egretair.example>\r\n" +
		"\r\n" +
		"The roster for next week is attached in spirit.\r\n")
	env := queue.Envelope{ID: "t" + strconv.Itoa(nextID) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10), From: from}
	for _, a := range to {
		env.Recipients = append(env.Recipients, queue.Recipient{Address: a})
	}
	if _, err := r.q.Enqueue(context.Background(), env, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	return msg
}

// waitState waits until the first record's recipient has the state.
func (r *rig) waitState(t *testing.T, rcpt string, want queue.State) queue.Recipient {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, rec := range r.q.Records() {
			for _, rc := range rec.Recipients {
				if rc.Address == rcpt && rc.State == want {
					return rc
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never reached state %s; records: %+v", rcpt, want, r.q.Records())
	return queue.Recipient{}
}

func TestSignedMessageReachesTheMXOverTLSAndVerifies(t *testing.T) {
	for _, algo := range []string{dkim.RSA, dkim.Ed25519} {
		t.Run(algo, func(t *testing.T) {
			dir := t.TempDir()
			key, err := dkim.Keygen(dir, localDomain, "s1", algo)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := dkim.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			r := newRig(t, []time.Duration{time.Hour}, keys)
			txt, err := key.TXT()
			if err != nil {
				t.Fatal(err)
			}
			r.zone.txt[key.RecordName()] = txt

			sent := r.send(t, "alice@"+localDomain, "bob@remote.test")
			got := r.mx.wait(t)
			if !got.tls {
				t.Error("the message was sent without STARTTLS though the MX offered it")
			}
			if got.from != "alice@"+localDomain || len(got.to) != 1 || got.to[0] != "bob@remote.test" {
				t.Errorf("envelope %q -> %v, want alice -> bob@remote.test", got.from, got.to)
			}
			head, rest, ok := bytes.Cut(got.data, []byte("\r\n"+"From: "))
			if !ok || !bytes.HasPrefix(head, []byte("DKIM-Signature:")) ||
				!bytes.Equal(append([]byte("From: "), rest...), sent) {
				t.Fatalf("delivered message is not DKIM-Signature + the queued bytes:\n%s", got.data)
			}
			vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(got.data),
				&msgdkim.VerifyOptions{LookupTXT: r.zone.lookupTXT})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != localDomain {
				t.Fatalf("verification: %+v (err %v), want one pass for %s", vs, vs[0].Err, localDomain)
			}
		})
	}
}

func TestDeferredWhileTheMXRefusesThenDelivered(t *testing.T) {
	r := newRig(t, []time.Duration{200 * time.Millisecond}, nil)
	r.mx.setRefuse(func(string) error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "greylisted"}
	})
	r.send(t, "alice@"+localDomain, "bob@remote.test")
	rc := r.waitState(t, "bob@remote.test", queue.Deferred)
	if !strings.Contains(rc.Reply, "451 4.3.0") {
		t.Errorf("deferred reply %q, want the MX's 451 4.3.0", rc.Reply)
	}

	r.mx.setRefuse(nil)
	r.clock.add(time.Second)
	r.q.Wake()
	got := r.mx.wait(t)
	if got.to[0] != "bob@remote.test" {
		t.Fatalf("delivered to %v", got.to)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := r.q.Len(); n != 0 {
		t.Fatalf("queue holds %d messages after delivery, want 0", n)
	}
}

// report checks a notice's structure and answers its per-recipient
// delivery-status fields.
func report(t *testing.T, m localMsg) map[string]string {
	t.Helper()
	if m.d.From != "" {
		t.Errorf("notice sent with MAIL FROM:<%s>, want <>", m.d.From)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q, want multipart/report; report-type=delivery-status",
			msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	fields := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.Split(ct, ";")[0])
		b, _ := io.ReadAll(p)
		if strings.HasPrefix(ct, "message/delivery-status") {
			for _, line := range strings.Split(string(b), "\r\n") {
				if k, v, ok := strings.Cut(line, ": "); ok {
					fields[k] = v
				}
			}
		}
	}
	want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("report parts %v, want %v (RFC 6522 §3)", types, want)
	}
	return fields
}

func TestGivenUpAfterTheGiveUpTimeWithANotice(t *testing.T) {
	r := newRig(t, []time.Duration{time.Hour}, nil)
	r.mx.setRefuse(func(string) error {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	})
	r.send(t, "alice@"+localDomain, "bob@remote.test")
	r.waitState(t, "bob@remote.test", queue.Deferred)

	// Past the 5 days of the default give-up time.
	r.clock.add(5*24*time.Hour + time.Minute)
	r.q.Wake()
	r.waitState(t, "bob@remote.test", queue.Failed)

	select {
	case m := <-r.local.ch:
		if m.d.Recipients[0] != "alice@"+localDomain {
			t.Errorf("notice sent to %v, want the sender", m.d.Recipients)
		}
		f := report(t, m)
		if f["Final-Recipient"] != "rfc822; bob@remote.test" || f["Action"] != "failed" ||
			f["Status"] != "4.4.7" {
			t.Errorf("delivery-status fields %v, want bob@remote.test failed 4.4.7", f)
		}
		if !strings.Contains(f["Diagnostic-Code"], "452 4.2.2") {
			t.Errorf("Diagnostic-Code %q, want the MX's last reply", f["Diagnostic-Code"])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notice reached the sender's mailbox")
	}
}

func TestRefusedRecipientFailsAtOnceAndABounceIsNeverBounced(t *testing.T) {
	r := newRig(t, []time.Duration{time.Hour}, nil)
	r.mx.setRefuse(func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	r.send(t, "alice@"+localDomain, "nobody@remote.test", "bob@remote.test")
	got := r.mx.wait(t)
	if len(got.to) != 1 || got.to[0] != "bob@remote.test" {
		t.Errorf("MX got the message for %v, want bob only", got.to)
	}
	select {
	case m := <-r.local.ch:
		f := report(t, m)
		if f["Final-Recipient"] != "rfc822; nobody@remote.test" || f["Status"] != "5.1.1" ||
			f["Action"] != "failed" {
			t.Errorf("delivery-status fields %v, want nobody@remote.test failed 5.1.1", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notice for the refused recipient")
	}

	// A message with the null sender, refused, causes no notice.
	r.send(t, "", "nobody@remote.test")
	time.Sleep(500 * time.Millisecond)
	select {
	case m := <-r.local.ch:
		t.Fatalf("a notice was sent about a bounce:\n%s", m.data)
	default:
	}
}

func TestDelayNoticeOncePerMessage(t *testing.T) {
	r := newRig(t, []time.Duration{time.Hour}, nil)
	r.mx.setRefuse(func(string) error {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 5}, Message: "try later"}
	})
	r.send(t, "alice@"+localDomain, "bob@remote.test")
	r.waitState(t, "bob@remote.test", queue.Deferred)
	select {
	case m := <-r.local.ch:
		t.Fatalf("a delay notice before 4 hours:\n%s", m.data)
	default:
	}

	for i := range 2 {
		r.clock.add(4*time.Hour + time.Minute)
		r.q.Wake()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			recs := r.q.Records()
			if len(recs) > 0 && recs[0].Recipients[0].Attempts >= i+2 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	select {
	case m := <-r.local.ch:
		f := report(t, m)
		if f["Action"] != "delayed" || f["Final-Recipient"] != "rfc822; bob@remote.test" ||
			f["Will-Retry-Until"] == "" {
			t.Errorf("delay notice fields %v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delay notice after 4 hours")
	}
	select {
	case m := <-r.local.ch:
		t.Fatalf("a second delay notice for the same message:\n%s", m.data)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestMXResolution(t *testing.T) {
	cases := []struct {
		name    string
		rcpt    string
		setup   func(z *zone)
		want    queue.State
		permErr bool
	}{
		{"a domain without MX is reached at its address", "carol@bare.test",
			func(z *zone) { z.a["bare.test"] = true }, queue.Delivered, false},
		{"the best MX that answers takes the mail", "dan@two.test",
			func(z *zone) {
				z.mx["two.test"] = []*net.MX{{Host: "mx.remote.test", Pref: 20}, {Host: "dead.test", Pref: 5}}
				z.a["dead.test"] = false
			}, queue.Delivered, false},
		{"a null MX fails at once", "erin@null.test",
			func(z *zone) { z.mx["null.test"] = []*net.MX{{Host: ".", Pref: 0}} }, queue.Failed, true},
		{"a domain that does not exist fails at once", "frank@nowhere.test",
			func(z *zone) {}, queue.Failed, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, []time.Duration{time.Hour}, nil)
			r.zone.mu.Lock()
			tc.setup(r.zone)
			r.zone.mu.Unlock()
			r.send(t, "alice@"+localDomain, tc.rcpt)
			if tc.want == queue.Delivered {
				got := r.mx.wait(t)
				if got.to[0] != tc.rcpt {
					t.Fatalf("MX got %v", got.to)
				}
				return
			}
			rc := r.waitState(t, tc.rcpt, tc.want)
			if rc.Attempts != 1 {
				t.Errorf("%d attempts, want 1: the failure is permanent", rc.Attempts)
			}
		})
	}
}

// The Router's error for a message that cannot be read whole reaches
// every recipient, local and remote.
func TestRouterAbandonsAMessageNotReadWhole(t *testing.T) {
	box := &localBox{ch: make(chan localMsg, 1)}
	router := &outbound.Router{
		IsLocal: func(d string) bool { return d == localDomain },
		Local:   box,
		Remote:  box,
	}
	bad := errors.New("disk read failed")
	d := queue.Delivery{ID: "x", Recipients: []string{"a@" + localDomain, "b@remote.test"}}
	got := router.Deliver(context.Background(), d, io.MultiReader(strings.NewReader("From: a\r\n"), errReader{bad}))
	for i, err := range got {
		if !errors.Is(err, bad) {
			t.Errorf("recipient %d: %v, want the read error", i, err)
		}
	}
	if len(box.ch) != 0 {
		t.Error("a transport was handed a message that was not whole")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
