package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
)

// Size of the crash test. EGRET_CRASH_MESSAGES scales it up for a
// longer run; the default finishes in about ten seconds on two cores.
const (
	defaultCrashMessages = 3000
	crashClients         = 6
	crashAccounts        = 5
	crashKills           = 4
)

// sent is one message a load client tried to send.
type sent struct {
	to   string
	body []byte
	// acked is set when the server answered 250 to its DATA.
	acked bool
}

// TestKilledNodeLosesNoAcknowledgedMessage sends mail from several SMTP
// clients while the node is killed with SIGKILL again and again and
// restarted on the same data folder. Every message that got 250 must end
// up in its recipient's INBOX exactly once, byte for byte; a message that
// did not get 250 is either absent or whole.
func TestKilledNodeLosesNoAcknowledgedMessage(t *testing.T) {
	total := defaultCrashMessages
	if v := os.Getenv("EGRET_CRASH_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EGRET_CRASH_MESSAGES=%q is not a positive number", v)
		}
		total = n
	}
	began := time.Now()

	n := startNode(t, dirtest.URL(t, "sqlite"))
	snap := loadSnapshot(t, filepath.Join(repoRoot, "testdata/oa/ekp-small.json"))
	status, body, err := n.api(http.MethodPost, "/api/v1/oa/snapshot", snap.JSON)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /api/v1/oa/snapshot: %d %v %s", status, err, body)
	}
	addrs := crashRecipients(t, snap)
	t.Logf("%d messages from %d clients to %v, %d kills", total, crashClients, addrs, crashKills)

	// The load: each client sends on one connection until it fails,
	// then dials again.
	var (
		mu      sync.Mutex
		msgs    = map[string]*sent{}
		next    atomic.Int64
		acked   atomic.Int64
		running sync.WaitGroup
	)
	smtpAddr := n.smtpAddr
	for c := range crashClients {
		running.Add(1)
		go func() {
			defer running.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			var cl *smtp.Client
			for {
				i := next.Add(1)
				if i > int64(total) {
					break
				}
				token := fmt.Sprintf("crash-%06d", i)
				m := &sent{to: addrs[int(i)%len(addrs)], body: crashMessage(rnd, token)}
				mu.Lock()
				msgs[token] = m
				mu.Unlock()
				for cl == nil {
					if cl, err = smtp.Dial(smtpAddr); err != nil {
						cl = nil
						time.Sleep(50 * time.Millisecond)
					}
				}
				if err := cl.SendMail("load@remote.example", []string{m.to}, bytes.NewReader(m.body)); err != nil {
					cl.Close()
					cl = nil
					continue
				}
				mu.Lock()
				m.acked = true
				mu.Unlock()
				acked.Add(1)
			}
			if cl != nil {
				cl.Quit()
			}
		}()
	}

	// The killer: SIGKILL at random moments spread over the load,
	// then a restart on the same data folder and ports.
	kills := 0
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for k := 1; k <= crashKills; k++ {
		mark := int64(total * k / (crashKills + 1))
		for next.Load() < mark {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rnd.IntN(400)) * time.Millisecond)
		if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		<-n.exited
		kills++
		t.Logf("kill %d after %d messages acknowledged", k, acked.Load())
		n = relaunch(t, n)
	}
	running.Wait()
	loadTime := time.Since(began)

	// The queue drains: `egret queue list` reads its records while
	// the node runs.
	drainStart := time.Now()
	for {
		out, err := n.egret("", "queue", "list")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(out, "\n0 messages\n") {
			break
		}
		if time.Since(drainStart) > 2*time.Minute {
			t.Fatalf("queue not drained after 2 minutes:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.stop(t)

	// What the store holds, by token.
	stored := readStoredMessages(t, dataDir(n))
	mu.Lock()
	defer mu.Unlock()
	var ackCount, lost, dup, wrong, halfOrWrong, unackedPresent int
	for token, m := range msgs {
		copies := stored[token]
		if m.acked {
			ackCount++
		}
		switch {
		case m.acked && len(copies) == 0:
			lost++
			if lost <= 5 {
				t.Errorf("%s got 250 and is not in %s's INBOX", token, m.to)
			}
			continue
		case len(copies) > 1:
			dup++
			if dup <= 5 {
				t.Errorf("%s is stored %d times", token, len(copies))
			}
		case !m.acked && len(copies) == 1:
			unackedPresent++
		}
		for _, c := range copies {
			if c.rcpt != m.to || !bytes.Equal(c.body, m.body) {
				if m.acked {
					wrong++
				} else {
					halfOrWrong++
				}
				t.Errorf("%s (acked %v) stored for <%s> with %d bytes; sent to <%s> %d bytes",
					token, m.acked, c.rcpt, len(c.body), m.to, len(m.body))
			}
		}
	}
	for token := range stored {
		if msgs[token] == nil {
			t.Errorf("stored message %s was never sent", token)
		}
	}
	if kills != crashKills || ackCount < total/2 {
		t.Errorf("%d kills, %d of %d messages acknowledged: the test did not exercise enough", kills, ackCount, total)
	}
	if lost+dup+wrong+halfOrWrong > 0 {
		t.Errorf("lost %d, duplicated %d, wrong %d acknowledged; %d unacknowledged stored damaged",
			lost, dup, wrong, halfOrWrong)
	}
	t.Logf("%d sent, %d acknowledged, %d unacknowledged but stored whole; load %v, drain %v, total %v",
		len(msgs), ackCount, unackedPresent, loadTime.Round(time.Millisecond),
		time.Since(drainStart).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// crashRecipients answers the addresses of the first available people
// of the snapshot, each address held by one person only.
func crashRecipients(t *testing.T, snap *snapshot) []string {
	t.Helper()
	owners := map[string]int{}
	for _, e := range snap.Elements {
		if e.Type == "person" {
			owners[e.address(mailDomain)]++
		}
	}
	var l []string
	for _, e := range snap.Elements {
		a := e.address(mailDomain)
		if e.Type == "person" && e.IsAvailable && owners[a] == 1 {
			l = append(l, a)
		}
		if len(l) == crashAccounts {
			return l
		}
	}
	t.Fatalf("the snapshot has fewer than %d usable people", crashAccounts)
	return nil
}

// crashMessage makes a message with a unique token and a body of a few
// hundred bytes to 30 KB, so that kills land in the middle of writes.
func crashMessage(rnd *rand.Rand, token string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: load@remote.example\r\nMessage-ID: <%s@remote.example>\r\n", token)
	fmt.Fprintf(&b, "Subject: %s\r\n\r\n", token)
	lines := 5 + rnd.IntN(400)
	for i := range lines {
		fmt.Fprintf(&b, "%s line %d %x\r\n", token, i, rnd.Uint64())
	}
	return b.Bytes()
}

// relaunch starts egret serve again with the environment, data folder
// and ports of a node that exited, and waits until it is ready.
func relaunch(t *testing.T, old *node) *node {
	t.Helper()
	n := &node{
		env:      old.env,
		httpAddr: old.httpAddr,
		smtpAddr: old.smtpAddr,
		imapAddr: old.imapAddr,
		apiKey:   old.apiKey,
		logPath:  old.logPath,
		exited:   make(chan struct{}),
	}
	logFile, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(egretBin, "serve")
	n.cmd.Env = n.env
	n.cmd.Dir = old.cmd.Dir
	n.cmd.Stdout = logFile
	n.cmd.Stderr = logFile
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			n.cmd.Process.Kill()
			<-n.exited
		}
	})
	start := time.Now()
	if err := n.waitReady(); err != nil {
		t.Fatalf("restart: %v\n%s", err, tail(n.logPath, 40))
	}
	t.Logf("egret serve restarted in %v", time.Since(start).Round(time.Millisecond))
	return n
}

// dataDir answers the node's data folder.
func dataDir(n *node) string {
	for _, kv := range n.env {
		if v, ok := strings.CutPrefix(kv, "EGRET_NODE_DATA_DIR="); ok {
			return v
		}
	}
	return ""
}

// storedCopy is one message file of an INBOX.
type storedCopy struct {
	// rcpt is the address in the Received field's "for" clause.
	rcpt string
	// body is what follows the trace fields egret put in front.
	body []byte
}

var crashTraceRE = regexp.MustCompile(`^Return-Path: <[^>]*>\r\nReceived: from [^\r]*\r\n\tby [^\r]* id [0-9a-f]{32}\r\n\tfor <([^>]+)>;\r\n\t[^\r]+\r\n`)

var crashTokenRE = regexp.MustCompile(`Message-ID: <(crash-\d+)@`)

// readStoredMessages reads every INBOX message file under the data
// folder and answers them by token.
func readStoredMessages(t *testing.T, data string) map[string][]storedCopy {
	t.Helper()
	out := map[string][]storedCopy{}
	boxes, _ := filepath.Glob(filepath.Join(data, "mail", "accounts", "*", "mailboxes", "INBOX"))
	if len(boxes) == 0 {
		t.Fatalf("no INBOX under %s", data)
	}
	for _, box := range boxes {
		for _, sub := range []string{"new", "cur"} {
			files, _ := os.ReadDir(filepath.Join(box, sub))
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(box, sub, f.Name()))
				if err != nil {
					t.Fatal(err)
				}
				loc := crashTraceRE.FindSubmatchIndex(b)
				tok := crashTokenRE.FindSubmatch(b)
				if loc == nil || tok == nil {
					t.Errorf("%s/%s is not a whole test message: %.200q", box, f.Name(), b)
					continue
				}
				out[string(tok[1])] = append(out[string(tok[1])], storedCopy{
					rcpt: string(b[loc[2]:loc[3]]),
					body: b[loc[1]:],
				})
			}
		}
	}
	return out
}
