package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore/lmtp"
	"github.com/egretair/egret/mailcore/queue"
)

// takeoverLimit is how long after the active back's death its users may
// go without IMAP.
const takeoverLimit = 10 * time.Second

// backPair is one front and a back b1 that runs as two processes over
// one store folder.
type backPair struct {
	dbURL   string
	front   *node
	members []*node
	lmtp    []string
	shared  string // the members' data folder, with the store
}

// startBackPair starts the members b1a and b1b of back b1, b1a first so
// that it takes the lease, and a front f1 that lists b1 twice. The
// members keep the default lease lifetime.
func startBackPair(t *testing.T) *backPair {
	t.Helper()
	p := &backPair{dbURL: dirtest.URL(t, "mysql"), lmtp: freePorts(t, 2)}
	secret := randomString(t, 24)
	p.shared = filepath.Join(t.TempDir(), "b1")
	var spec []string
	for i, name := range []string{"b1a", "b1b"} {
		m := startNodeEnv(t, p.dbURL, "EGRET_NODE_ROLE=back", "EGRET_NODE_NAME="+name,
			"EGRET_NODE_BACK=b1", "EGRET_NODE_DATA_DIR="+p.shared,
			"EGRET_LMTP_ADDR="+p.lmtp[i], "EGRET_CLUSTER_PROXY_SECRET="+secret)
		p.members = append(p.members, m)
		spec = append(spec, fmt.Sprintf("b1=%s/%s/%s", m.imapAddr, p.lmtp[i], m.httpAddr))
	}
	p.front = startNodeEnv(t, p.dbURL, "EGRET_NODE_ROLE=front", "EGRET_NODE_NAME=f1",
		"EGRET_CLUSTER_PROXY_SECRET="+secret, "EGRET_CLUSTER_BACKS="+strings.Join(spec, ","),
		"EGRET_CLUSTER_BREAKER_INTERVAL=300ms", "EGRET_QUEUE_RETRY_SCHEDULE=1s")
	return p
}

// lease is a back member's lease as its heartbeat tells it.
type lease struct {
	Back, State, Holder string
	Fence               uint64
}

// leaseOf reads a back member's lease from its heartbeat.
func leaseOf(n *node) (lease, error) {
	var hb struct {
		Lease *lease `json:"lease"`
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + n.httpAddr + "/heartbeat")
	if err != nil {
		return lease{}, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&hb); err != nil {
		return lease{}, err
	}
	if hb.Lease == nil {
		return lease{}, errors.New("heartbeat without a lease")
	}
	return *hb.Lease, nil
}

// waitLease waits until the member's heartbeat reports state and
// answers its lease.
func waitLease(t *testing.T, n *node, state string, limit time.Duration) lease {
	t.Helper()
	start := time.Now()
	for {
		l, err := leaseOf(n)
		if err == nil && l.State == state {
			return l
		}
		if time.Since(start) > limit {
			t.Fatalf("lease of %s after %v: %+v, %v; want %s", n.httpAddr, limit, l, err, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inboxSubjects signs in and answers the subjects in the INBOX, in UID
// order.
func inboxSubjects(addr, user, password string) ([]string, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	var out []string
	if sel.NumMessages > 0 {
		var all imap.SeqSet
		all.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			out = append(out, m.Envelope.Subject)
		}
	}
	c.Logout().Wait()
	return out, nil
}

// waitSubjects waits until the INBOX, read through the front, holds
// exactly want, each once, and fails on a duplicate.
func waitSubjects(t *testing.T, front *node, user, password string, want []string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		got, err := inboxSubjects(front.imapAddr, user, password)
		if err == nil {
			seen := map[string]int{}
			for _, s := range got {
				seen[s]++
				if seen[s] > 1 {
					t.Fatalf("INBOX of %s holds %q twice: %q", user, s, got)
				}
			}
			if len(got) == len(want) && !slices.ContainsFunc(want, func(s string) bool { return seen[s] != 1 }) {
				return
			}
		}
		if time.Since(start) > limit {
			t.Fatalf("INBOX of %s after %v: %q, %v; want %q", user, limit, got, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStandbyBackTakesOverAndTheFormerActiveWritesNothing runs back b1
// as an active and a standby over one store folder behind one front.
// The active is killed: within ten seconds IMAP through the front works
// again, every acknowledged message is there once, and new mail
// arrives. The killed member comes back as the standby. Then the new
// active is stopped (SIGSTOP) until its lease lapses and the other
// takes over; woken, it refuses a delivery made to it directly and
// reports itself standby.
func TestStandbyBackTakesOverAndTheFormerActiveWritesNothing(t *testing.T) {
	p := startBackPair(t)
	a, b := p.members[0], p.members[1]
	first := waitLease(t, a, "active", 5*time.Second)
	if l := waitLease(t, b, "standby", 5*time.Second); l.Holder != "b1a" || l.Fence != first.Fence {
		t.Fatalf("standby sees the lease as %+v, want held by b1a under fence %d", l, first.Fence)
	}

	pw := randomString(t, 20)
	addr := createUser(t, p.front, "tangwei", pw, 0)
	var want []string
	send := func(subject string) {
		t.Helper()
		sendTo(t, p.front, addr, subject)
		want = append(want, subject)
	}
	for i := range 5 {
		send(fmt.Sprintf("before the kill %d", i+1))
	}
	waitSubjects(t, p.front, "tangwei", pw, want, 15*time.Second)

	// The active dies; mail keeps coming to the front meanwhile.
	kill(t, a)
	killed := time.Now()
	for i := range 3 {
		send(fmt.Sprintf("during the takeover %d", i+1))
	}
	for {
		if _, err := inboxCount(p.front.imapAddr, "tangwei", pw); err == nil {
			break
		}
		if time.Since(killed) > takeoverLimit {
			t.Fatalf("no IMAP sign-in through the front %v after the active back died", takeoverLimit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	takeover := time.Since(killed)
	t.Logf("takeover after SIGKILL: IMAP through the front again after %v", takeover.Round(time.Millisecond))
	fmt.Printf("standby takeover after SIGKILL of the active back: %v\n", takeover.Round(time.Millisecond))
	send("after the takeover")
	waitSubjects(t, p.front, "tangwei", pw, want, 20*time.Second)
	second := waitLease(t, b, "active", time.Second)
	if second.Fence <= first.Fence {
		t.Fatalf("new active's fence %d, want above %d", second.Fence, first.Fence)
	}

	// The killed member comes back as the standby, and stays one.
	a = relaunch(t, a)
	p.members[0] = a
	if l := waitLease(t, a, "standby", 5*time.Second); l.Holder != "b1b" {
		t.Fatalf("restarted member sees the lease as %+v, want held by b1b", l)
	}
	time.Sleep(6 * time.Second)
	if l, err := leaseOf(b); err != nil || l.State != "active" || l.Fence != second.Fence {
		t.Fatalf("after the old active's return b1b's lease is %+v, %v; want active under fence %d", l, err, second.Fence)
	}
	if l, err := leaseOf(a); err != nil || l.State != "standby" {
		t.Fatalf("the returned member's lease is %+v, %v; want standby", l, err)
	}

	// The active is paused until its lease lapses; the standby takes
	// over and serves.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { b.cmd.Process.Signal(syscall.SIGCONT) })
	third := waitLease(t, a, "active", 15*time.Second)
	t.Logf("takeover after SIGSTOP: standby active after %v", time.Since(stopped).Round(time.Millisecond))
	if third.Fence <= second.Fence {
		t.Fatalf("fence after the pause %d, want above %d", third.Fence, second.Fence)
	}
	send("while the old active sleeps")
	waitSubjects(t, p.front, "tangwei", pw, want, 20*time.Second)

	// Woken, the former active writes nothing: a delivery straight to
	// its LMTP is refused for now, and it says it is standby.
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c := &lmtp.Client{Addr: p.lmtp[1], LocalName: "test.example"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := "From: <ops@remote.example>\r\nSubject: to the woken node\r\n\r\nSleepy.\r\n"
	errs := c.Deliver(ctx, queue.Delivery{ID: "woken" + randomString(t, 8), From: "ops@remote.example",
		Recipients: []string{addr}}, strings.NewReader(msg))
	var se *smtp.SMTPError
	if len(errs) != 1 || errs[0] == nil || errors.As(errs[0], &se) && se.Code/100 != 4 {
		t.Fatalf("delivery straight to the woken former active: %v; want a temporary refusal", errs)
	}
	t.Logf("the woken former active answered: %v", errs[0])
	waitLease(t, b, "standby", 5*time.Second)
	if l, err := leaseOf(a); err != nil || l.State != "active" || l.Fence != third.Fence {
		t.Fatalf("after the wake-up b1a's lease is %+v, %v; want active under fence %d", l, err, third.Fence)
	}
	send("after the wake-up")
	waitSubjects(t, p.front, "tangwei", pw, want, 20*time.Second)
	if n := inboxFiles(t, p.shared); n != len(want) {
		t.Fatalf("the shared store holds %d message files, want %d", n, len(want))
	}
	if b, err := os.ReadFile(filepath.Join(p.shared, "mail", "fence")); err != nil ||
		string(b) != fmt.Sprintf("%d\n", third.Fence) {
		t.Fatalf("the store's fence file holds %q, %v; want %d", b, err, third.Fence)
	}
}

// inboxFiles counts the INBOX message files of every account in the
// store under the data folder.
func inboxFiles(t *testing.T, dataDir string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		files, err := filepath.Glob(filepath.Join(dataDir, "mail", "accounts", "*", "mailboxes", "INBOX", sub, "*"))
		if err != nil {
			t.Fatal(err)
		}
		n += len(files)
	}
	return n
}

// TestStandbyRefusesAStoreFolderThatIsNotTheSharedOne starts b1b on a
// folder of its own, as on a host where the shared volume is not
// mounted. When the active b1a dies, b1b takes the lease but refuses
// to serve that folder: it gives the lease back, logs an error naming
// the folder, and writes nothing there. b1a, restarted on the shared
// folder, serves again with all its mail, and the mail sent meanwhile.
func TestStandbyRefusesAStoreFolderThatIsNotTheSharedOne(t *testing.T) {
	dbURL := dirtest.URL(t, "mysql")
	lmtps := freePorts(t, 2)
	secret := randomString(t, 24)
	shared := filepath.Join(t.TempDir(), "b1")
	unmounted := filepath.Join(t.TempDir(), "b1-mountpoint")
	var members []*node
	var spec []string
	for i, name := range []string{"b1a", "b1b"} {
		dir := shared
		if i == 1 {
			dir = unmounted
		}
		m := startNodeEnv(t, dbURL, "EGRET_NODE_ROLE=back", "EGRET_NODE_NAME="+name,
			"EGRET_NODE_BACK=b1", "EGRET_NODE_DATA_DIR="+dir,
			"EGRET_LMTP_ADDR="+lmtps[i], "EGRET_CLUSTER_PROXY_SECRET="+secret,
			"EGRET_CLUSTER_LEASE_TTL=2s")
		members = append(members, m)
		spec = append(spec, fmt.Sprintf("b1=%s/%s/%s", m.imapAddr, lmtps[i], m.httpAddr))
	}
	front := startNodeEnv(t, dbURL, "EGRET_NODE_ROLE=front", "EGRET_NODE_NAME=f1",
		"EGRET_CLUSTER_PROXY_SECRET="+secret, "EGRET_CLUSTER_BACKS="+strings.Join(spec, ","),
		"EGRET_CLUSTER_BREAKER_INTERVAL=300ms", "EGRET_QUEUE_RETRY_SCHEDULE=1s")
	a, b := members[0], members[1]
	waitLease(t, a, "active", 5*time.Second)

	pw := randomString(t, 20)
	addr := createUser(t, front, "ortiz", pw, 0)
	want := []string{"before the kill"}
	sendTo(t, front, addr, want[0])
	waitSubjects(t, front, "ortiz", pw, want, 15*time.Second)

	kill(t, a)
	sendTo(t, front, addr, "while nobody serves")
	want = append(want, "while nobody serves")
	// The lease lapses after 2 s; b1b tries it every second, and
	// refuses its folder each time it gets it.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(tail(b.logPath, 200), "not the store folder of this back") {
		if time.Now().After(deadline) {
			t.Fatalf("b1b logged no refusal of its folder:\n%s", tail(b.logPath, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	refusal := ""
	for _, line := range strings.Split(tail(b.logPath, 200), "\n") {
		if strings.Contains(line, "not the store folder of this back") {
			refusal = line
		}
	}
	if !strings.Contains(refusal, `"level":"ERROR"`) || !strings.Contains(refusal, filepath.Join(unmounted, "mail")) ||
		!strings.Contains(refusal, "mounted") {
		t.Fatalf("b1b's refusal does not name the folder and the fix: %s", refusal)
	}
	if l, err := leaseOf(b); err != nil || l.State != "standby" {
		t.Fatalf("b1b after refusing its folder: %+v, %v; want standby", l, err)
	}
	for _, name := range []string{"fence", "store-id", "accounts"} {
		if _, err := os.Stat(filepath.Join(unmounted, "mail", name)); err == nil {
			t.Errorf("b1b wrote %s into the folder it refused", name)
		}
	}

	// The shared folder's member comes back and serves everything.
	a = relaunch(t, a)
	waitLease(t, a, "active", 15*time.Second)
	sendTo(t, front, addr, "after the return")
	want = append(want, "after the return")
	waitSubjects(t, front, "ortiz", pw, want, 20*time.Second)
	if l, err := leaseOf(b); err != nil || l.State != "standby" {
		t.Fatalf("b1b after b1a's return: %+v, %v; want standby", l, err)
	}
}
