package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Transport that keeps what it was given whole, and fails
// as told.
type recorder struct {
	mu        sync.Mutex
	delivered map[string][][]byte // address -> message bodies
	attempts  int
	// fail, when set, answers the error for an address.
	fail func(addr string) error
}

func newRecorder() *recorder {
	return &recorder{delivered: make(map[string][][]byte)}
}

func (r *recorder) Deliver(_ context.Context, d Delivery, body io.Reader) []error {
	b, err := io.ReadAll(body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	out := make([]error, len(d.Recipients))
	for i, to := range d.Recipients {
		if err == nil && r.fail != nil {
			out[i] = r.fail(to)
		} else {
			out[i] = err
		}
		if out[i] == nil {
			r.delivered[to] = append(r.delivered[to], b)
		}
	}
	return out
}

func (r *recorder) count(addr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered[addr])
}

func (r *recorder) setFail(f func(string) error) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

func (r *recorder) attemptCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

var quiet = slog.New(slog.DiscardHandler)

func open(t *testing.T, cfg Config, tr Transport) *Queue {
	t.Helper()
	q, err := Open(cfg, tr, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func env(id string, addrs ...string) Envelope {
	e := Envelope{ID: id, From: "sender@remote.example"}
	for _, a := range addrs {
		e.Recipients = append(e.Recipients, Recipient{Address: a, Account: "acct-" + a})
	}
	return e
}

func enqueue(t *testing.T, q *Queue, e Envelope, body string) {
	t.Helper()
	if _, err := q.Enqueue(context.Background(), e, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// copyQueue makes a queue folder holding the given spool files.
func copyQueue(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, "spool", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFilesCutAtAnyByteAreNeverDeliveredAsWhole(t *testing.T) {
	// One message, queued and left undelivered.
	src := t.TempDir()
	q := open(t, Config{Dir: src}, newRecorder())
	body := "Subject: cut\r\n\r\nwhole body\r\n"
	enqueue(t, q, env("m1", "lina@x.example", "wang@x.example"), body)
	q.Close()
	rec, _ := os.ReadFile(filepath.Join(src, "spool", "m1.rec"))
	msg, _ := os.ReadFile(filepath.Join(src, "spool", "m1.msg"))

	// The whole pair is delivered: the checks below can fail.
	dir := copyQueue(t, map[string][]byte{"m1.rec": rec, "m1.msg": msg})
	tr := newRecorder()
	whole := open(t, Config{Dir: dir}, tr)
	whole.Start()
	waitFor(t, "the whole message is delivered", func() bool { return whole.Len() == 0 })
	if got := tr.count("lina@x.example"); got != 1 {
		t.Fatalf("whole message delivered %d times, want 1", got)
	}

	tests := []struct {
		name  string
		files func(cut int) map[string][]byte
		max   int
	}{
		{"record cut", func(n int) map[string][]byte {
			return map[string][]byte{"m1.rec": rec[:n], "m1.msg": msg}
		}, len(rec)},
		{"message cut", func(n int) map[string][]byte {
			return map[string][]byte{"m1.rec": rec, "m1.msg": msg[:n]}
		}, len(msg)},
		{"message longer", func(n int) map[string][]byte {
			return map[string][]byte{"m1.rec": rec, "m1.msg": append(slices.Clone(msg), msg[:n+1]...)}
		}, len(msg)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for n := range tt.max {
				dir := copyQueue(t, tt.files(n))
				tr := newRecorder()
				q, err := Open(Config{Dir: dir}, tr, quiet)
				if err != nil {
					t.Fatalf("cut at %d: %v", n, err)
				}
				q.Start()
				if q.Len() != 0 {
					t.Errorf("cut at %d: the queue took the damaged message", n)
				}
				q.Close()
				if tr.attemptCount() != 0 {
					t.Errorf("cut at %d: %d delivery attempts", n, tr.attemptCount())
				}
			}
		})
	}

	t.Run("message changed, same size", func(t *testing.T) {
		bad := slices.Clone(msg)
		bad[len(bad)-3] ^= 0x20
		dir := copyQueue(t, map[string][]byte{"m1.rec": rec, "m1.msg": bad})
		tr := newRecorder()
		q := open(t, Config{Dir: dir}, tr)
		q.Start()
		waitFor(t, "the damaged message leaves the queue", func() bool { return q.Len() == 0 })
		if n := tr.count("lina@x.example") + tr.count("wang@x.example"); n != 0 {
			t.Errorf("a changed message was delivered %d times", n)
		}
		if _, err := os.Stat(filepath.Join(dir, "damaged", "m1.msg")); err != nil {
			t.Errorf("damaged message not set aside: %v", err)
		}
	})
}

func TestLeftoversOfAnUnacknowledgedEnqueueAreRemoved(t *testing.T) {
	src := t.TempDir()
	q := open(t, Config{Dir: src}, newRecorder())
	enqueue(t, q, env("m1", "lina@x.example"), "Subject: a\r\n\r\n")
	q.Close()
	rec, _ := os.ReadFile(filepath.Join(src, "spool", "m1.rec"))
	msg, _ := os.ReadFile(filepath.Join(src, "spool", "m1.msg"))

	for name, files := range map[string]map[string][]byte{
		"message without record": {"m1.msg": msg},
		"record without message": {"m1.rec": rec},
	} {
		t.Run(name, func(t *testing.T) {
			dir := copyQueue(t, files)
			os.MkdirAll(filepath.Join(dir, "tmp"), 0o700)
			os.WriteFile(filepath.Join(dir, "tmp", "m2.msg"), []byte("half"), 0o600)
			tr := newRecorder()
			q := open(t, Config{Dir: dir}, tr)
			q.Start()
			if q.Len() != 0 {
				t.Fatal("a leftover was taken for a queued message")
			}
			for _, sub := range []string{"spool", "tmp"} {
				if l, _ := os.ReadDir(filepath.Join(dir, sub)); len(l) != 0 {
					t.Errorf("%s/ still holds %d files", sub, len(l))
				}
			}
		})
	}
}

func TestRetrySchedule(t *testing.T) {
	want := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := RetryDelay(DefaultRetry, i+1); got != w {
			t.Errorf("after %d failed attempts: wait %v, want %v", i+1, got, w)
		}
	}
	if DefaultGiveUpAfter != 120*time.Hour {
		t.Errorf("default give-up time %v, want 5 days", DefaultGiveUpAfter)
	}

	parsed, err := ParseRetry("30s, 2m 1h")
	if err != nil || !slices.Equal(parsed, []time.Duration{30 * time.Second, 2 * time.Minute, time.Hour}) {
		t.Errorf("ParseRetry: %v, %v", parsed, err)
	}
	for _, bad := range []string{"", "1m nonsense", "-1m", "0s"} {
		if _, err := ParseRetry(bad); err == nil {
			t.Errorf("ParseRetry(%q) took a bad schedule", bad)
		}
	}
}

func TestTemporaryFailuresAreRetriedOnTheSchedule(t *testing.T) {
	dir := t.TempDir()
	tr := newRecorder()
	var mu sync.Mutex
	var times []time.Time
	failures := 3
	tr.fail = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) <= failures {
			return errors.New("451 try later")
		}
		return nil
	}
	retry := []time.Duration{40 * time.Millisecond, 120 * time.Millisecond}
	q := open(t, Config{Dir: dir, Retry: retry}, tr)
	q.Start()
	enqueue(t, q, env("m1", "lina@x.example"), "Subject: r\r\n\r\n")

	// After the first failure the record on disk says deferred.
	waitFor(t, "the first failure is recorded", func() bool {
		r, err := ReadRecord(dir, "m1")
		return err == nil && r.Recipients[0].State == Deferred
	})
	r, _ := ReadRecord(dir, "m1")
	if rc := r.Recipients[0]; rc.Attempts < 1 || rc.Next.IsZero() || !strings.Contains(rc.Reply, "451") {
		t.Errorf("deferred recipient recorded as %+v", rc)
	}

	waitFor(t, "the message is delivered", func() bool { return q.Len() == 0 })
	if tr.count("lina@x.example") != 1 {
		t.Fatalf("delivered %d times", tr.count("lina@x.example"))
	}
	mu.Lock()
	defer mu.Unlock()
	wants := []time.Duration{retry[0], retry[1], retry[1]}
	for i, w := range wants {
		if gap := times[i+1].Sub(times[i]); gap < w || gap > w+time.Second {
			t.Errorf("wait after failure %d: %v, want %v", i+1, gap, w)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "spool", "m1.msg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delivered message still in the spool: %v", err)
	}
}

// notes is a Notifier that keeps what it is told.
type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) GaveUp(rec Record, rc Recipient) {
	n.mu.Lock()
	n.list = append(n.list, rec.ID+" "+rc.Address)
	n.mu.Unlock()
}

func TestGiveUpAndPermanentFailuresAreRecordedPerRecipient(t *testing.T) {
	dir := t.TempDir()
	tr := newRecorder()
	tr.fail = func(addr string) error {
		switch addr {
		case "gone@x.example":
			return Permanent(errors.New("550 5.1.1 no such mailbox"))
		case "slow@x.example":
			return errors.New("451 4.3.0 try later")
		}
		return nil
	}
	q := open(t, Config{Dir: dir, Retry: []time.Duration{20 * time.Millisecond},
		GiveUpAfter: 150 * time.Millisecond}, tr)
	n := &notes{}
	q.Notifier = n
	q.Start()
	enqueue(t, q, env("m1", "ok@x.example", "gone@x.example", "slow@x.example"), "Subject: g\r\n\r\n")

	waitFor(t, "every recipient is final", func() bool {
		r, err := ReadRecord(dir, "m1")
		if err != nil {
			return false
		}
		for _, rc := range r.Recipients {
			if !rc.State.final() {
				return false
			}
		}
		return true
	})
	r, _ := ReadRecord(dir, "m1")
	got := map[string]Recipient{}
	for _, rc := range r.Recipients {
		got[rc.Address] = rc
	}
	if rc := got["ok@x.example"]; rc.State != Delivered || tr.count("ok@x.example") != 1 {
		t.Errorf("ok: %+v, delivered %d times", rc, tr.count("ok@x.example"))
	}
	if rc := got["gone@x.example"]; rc.State != Failed || rc.Attempts != 1 || !strings.Contains(rc.Reply, "550") {
		t.Errorf("permanent failure recorded as %+v", rc)
	}
	if rc := got["slow@x.example"]; rc.State != Failed || rc.Attempts < 2 || !strings.Contains(rc.Reply, "gave up") {
		t.Errorf("given-up recipient recorded as %+v", rc)
	}
	waitFor(t, "the notifier is told", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.list) >= 2
	})
	n.mu.Lock()
	slices.Sort(n.list)
	if !slices.Equal(n.list, []string{"m1 gone@x.example", "m1 slow@x.example"}) {
		t.Errorf("notifier told %v", n.list)
	}
	n.mu.Unlock()
	// The failed message stays for the operator; nothing more is tried.
	before := tr.attemptCount()
	time.Sleep(100 * time.Millisecond)
	if q.Len() != 1 || tr.attemptCount() != before {
		t.Errorf("after giving up: %d messages queued, %d more attempts", q.Len(), tr.attemptCount()-before)
	}
}

func TestHoldReleaseRetryDeleteOnARunningQueue(t *testing.T) {
	dir := t.TempDir()
	tr := newRecorder()
	down := func(string) error { return errors.New("451 down") }
	tr.setFail(down)
	cfg := Config{Dir: dir, Retry: []time.Duration{20 * time.Millisecond},
		ControlPoll: 20 * time.Millisecond}
	q := open(t, cfg, tr)
	q.Start()
	enqueue(t, q, env("m1", "lina@x.example"), "Subject: h\r\n\r\n")
	waitFor(t, "a first attempt", func() bool { return tr.attemptCount() > 0 })

	// Commands go through control/, since this queue holds the lock.
	ctx := context.Background()
	if _, err := Command(ctx, cfg, OpHold, "m1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	before := tr.attemptCount()
	time.Sleep(150 * time.Millisecond)
	if n := tr.attemptCount() - before; n != 0 {
		t.Errorf("%d attempts while held", n)
	}
	if r, _ := ReadRecord(dir, "m1"); r == nil || !r.Held {
		t.Errorf("record does not say held: %+v", r)
	}

	tr.setFail(nil)
	if _, err := Command(ctx, cfg, OpRelease, "m1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the released message is delivered", func() bool { return q.Len() == 0 })
	if tr.count("lina@x.example") != 1 {
		t.Errorf("delivered %d times", tr.count("lina@x.example"))
	}

	// Delete: held first, so no attempt delivers it meanwhile.
	tr.setFail(down)
	enqueue(t, q, env("m2", "lina@x.example"), "Subject: d\r\n\r\n")
	if _, err := Command(ctx, cfg, OpHold, "m2"); err != nil {
		t.Fatal(err)
	}
	tr.setFail(nil)
	if _, err := Command(ctx, cfg, OpDelete, "m2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted message is gone", func() bool { return q.Len() == 0 })
	if l, _ := os.ReadDir(filepath.Join(dir, "spool")); len(l) != 0 {
		t.Errorf("spool holds %d files after delete", len(l))
	}
	if tr.count("lina@x.example") != 1 {
		t.Errorf("deleted message was delivered")
	}
	if _, err := Command(ctx, cfg, OpHold, "m2"); !errors.Is(errorsFromText(err), ErrNotFound) {
		t.Errorf("hold of a deleted message: %v", err)
	}
}

// errorsFromText maps an error handed back through control/, which
// carries only its text, to ErrNotFound when it says so.
func errorsFromText(err error) error {
	if err != nil && strings.Contains(err.Error(), ErrNotFound.Error()) {
		return ErrNotFound
	}
	return err
}

func TestCommandsWithoutARunningServerActOnTheFiles(t *testing.T) {
	dir := t.TempDir()
	tr := newRecorder()
	tr.setFail(func(addr string) error {
		return Permanent(errors.New("550 5.1.1 no such mailbox"))
	})
	cfg := Config{Dir: dir}
	q := open(t, cfg, tr)
	q.Start()
	enqueue(t, q, env("m1", "lina@x.example"), "Subject: f\r\n\r\n")
	waitFor(t, "the recipient fails", func() bool {
		r, err := ReadRecord(dir, "m1")
		return err == nil && r.Recipients[0].State == Failed
	})
	q.Close()

	// No server: retry takes the lock and rewrites the record.
	out, err := Command(context.Background(), cfg, OpRetry, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 recipients") {
		t.Errorf("retry answered %q", out)
	}
	r, err := ReadRecord(dir, "m1")
	if err != nil || r.Recipients[0].State != Pending {
		t.Fatalf("after retry: %+v, %v", r, err)
	}

	// The next start delivers it.
	tr2 := newRecorder()
	q2 := open(t, cfg, tr2)
	q2.Start()
	waitFor(t, "the retried message is delivered", func() bool { return q2.Len() == 0 })
	if tr2.count("lina@x.example") != 1 {
		t.Errorf("delivered %d times", tr2.count("lina@x.example"))
	}
}

func TestRestartResumesDeliveries(t *testing.T) {
	dir := t.TempDir()
	down := newRecorder()
	down.setFail(func(string) error { return errors.New("451 down") })
	q := open(t, Config{Dir: dir, Retry: []time.Duration{time.Hour}}, down)
	q.Start()
	var bodies []string
	for i := range 30 {
		id := fmt.Sprintf("m%02d", i)
		body := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", i*37))
		bodies = append(bodies, body)
		enqueue(t, q, env(id, "lina@x.example"), body)
	}
	waitFor(t, "every message is deferred", func() bool { return down.attemptCount() >= 30 })
	q.Close()

	// A second process with a working transport: the deferred
	// recipients wait for their time, so retry them now.
	cfg := Config{Dir: dir}
	for i := range 30 {
		if _, err := Command(context.Background(), cfg, OpRetry, fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	up := newRecorder()
	q2 := open(t, cfg, up)
	if q2.Len() != 30 {
		t.Fatalf("restart loaded %d messages, want 30", q2.Len())
	}
	q2.Start()
	waitFor(t, "all are delivered", func() bool { return q2.Len() == 0 })
	up.mu.Lock()
	defer up.mu.Unlock()
	got := up.delivered["lina@x.example"]
	if len(got) != 30 {
		t.Fatalf("delivered %d messages, want 30", len(got))
	}
	for _, b := range bodies {
		if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, []byte(b)) }) {
			t.Errorf("message %q not delivered byte for byte", b[:12])
		}
	}
}

func TestASecondProcessCannotRunTheQueue(t *testing.T) {
	dir := t.TempDir()
	open(t, Config{Dir: dir}, newRecorder())
	if _, err := Open(Config{Dir: dir}, newRecorder(), quiet); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open answered %v, want ErrLocked", err)
	}
}

// gatedTransport fails every attempt, the first only once release is
// closed, as a delivery to a back that hangs.
type gatedTransport struct {
	*recorder
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (g *gatedTransport) Deliver(ctx context.Context, d Delivery, body io.Reader) []error {
	g.once.Do(func() {
		close(g.started)
		<-g.release
	})
	return g.recorder.Deliver(ctx, d, body)
}

func TestKickMakesDeferredRecipientsDueNow(t *testing.T) {
	tr := &gatedTransport{recorder: newRecorder(), release: make(chan struct{}), started: make(chan struct{})}
	// The first attempt fails for both; the remote one stays down.
	remoteDown := true
	tr.setFail(func(addr string) error {
		if tr.attempts == 1 || remoteDown && addr == "ops@remote.example" {
			return errors.New("451 unavailable")
		}
		return nil
	})
	q := open(t, Config{Dir: t.TempDir(), Retry: []time.Duration{time.Hour}}, tr)
	q.Start()
	enqueue(t, q, env("m1", "lina@egretair.example", "ops@remote.example"), "Subject: k\r\n\r\n")

	// The kick comes while the first attempt hangs: the attempt's
	// deferral does not wait out the hour.
	<-tr.started
	if n := q.Kick(func(rc Recipient) bool { return strings.HasSuffix(rc.Address, "@egretair.example") }); n != 0 {
		t.Errorf("kick during the attempt made %d due, want none yet", n)
	}
	close(tr.release)
	waitFor(t, "the kicked recipient is delivered", func() bool { return tr.count("lina@egretair.example") == 1 })

	// The recipient the kick did not match waits for its schedule.
	time.Sleep(100 * time.Millisecond)
	if n := tr.count("ops@remote.example"); n != 0 {
		t.Fatalf("the recipient not kicked was delivered %d times before its retry", n)
	}
	tr.mu.Lock()
	remoteDown = false
	tr.mu.Unlock()
	if n := q.Kick(func(Recipient) bool { return true }); n != 1 {
		t.Fatalf("second kick made %d recipients due, want 1", n)
	}
	waitFor(t, "the message leaves the queue", func() bool { return q.Len() == 0 })
}
