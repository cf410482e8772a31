package peer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egretair/egret/mailcore/node"
)

// back is a heartbeat server that can be made unwell: answering 503,
// or not answering within the poll's timeout.
type back struct {
	srv  *httptest.Server
	mode atomic.Value // "up", "503", "hang"
}

func startBack(t *testing.T) *back {
	b := &back{}
	b.mode.Store("up")
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hb := node.Heartbeat{Node: "back-1", Role: "back", Healthy: true}
		switch b.mode.Load().(string) {
		case "503":
			hb.Healthy = false
			w.WriteHeader(http.StatusServiceUnavailable)
		case "hang":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return
		}
		json.NewEncoder(w).Encode(hb)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// waitState waits up to within for peer's breaker to reach want and
// answers how long it took.
func waitState(t *testing.T, p *Peers, peer, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if p.State(peer) == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("breaker for %s is %q after %v, want %q", peer, p.State(peer), within, want)
	return 0
}

func TestBreakerFollowsHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name, down string
	}{
		{"a back answering 503 opens its breaker", "503"},
		{"a back not answering in time opens its breaker", "hang"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBack(t)
			name := "back-" + tc.down
			reg := prometheus.NewRegistry()
			cfg := Config{Interval: 40 * time.Millisecond, Timeout: 30 * time.Millisecond,
				Failures: 3, OpenFor: 80 * time.Millisecond}
			p := New(cfg, []Peer{{Name: name, Heartbeat: b.srv.URL + "/heartbeat"}},
				slog.New(slog.DiscardHandler), reg)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				<-done
			})

			// A healthy back is let through.
			time.Sleep(150 * time.Millisecond)
			if _, err := p.Allow(name); err != nil {
				t.Fatalf("Allow with the back up: %v", err)
			}

			// Three failed polls: open within about 3 intervals
			// plus a timeout.
			b.mode.Store(tc.down)
			took := waitState(t, p, name, "open", 2*time.Second)
			t.Logf("opened after %v", took)
			_, err := p.Allow(name)
			var ue *UnavailableError
			if !errors.As(err, &ue) || !ue.Temporary() || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Allow with the breaker open = %v, want a temporary *UnavailableError", err)
			}
			if got := p.Status(); len(got) != 1 || got[0] != (node.BreakerStatus{Node: name, State: "open"}) {
				t.Fatalf("Status = %+v", got)
			}
			if v := metricValue(t, reg, "egret_breaker_state", name, ""); v != 2 {
				t.Fatalf("egret_breaker_state = %v, want 2 (open)", v)
			}

			// It stays open while the back is down, past OpenFor.
			time.Sleep(300 * time.Millisecond)
			if st := p.State(name); st == "closed" {
				t.Fatalf("breaker closed while the back is still down")
			}

			// Back up: closed by the heartbeats alone, within
			// OpenFor plus an interval or two.
			b.mode.Store("up")
			took = waitState(t, p, name, "closed", 2*time.Second)
			t.Logf("closed after %v", took)
			if _, err := p.Allow(name); err != nil {
				t.Fatalf("Allow after the back returned: %v", err)
			}
			if v := metricValue(t, reg, "egret_breaker_transitions_total", name, "open"); v < 1 {
				t.Fatalf("transitions to open = %v", v)
			}
			if v := metricValue(t, reg, "egret_breaker_transitions_total", name, "closed"); v != 1 {
				t.Fatalf("transitions to closed = %v, want 1", v)
			}
		})
	}
}

func TestReportedFailuresOpenBreaker(t *testing.T) {
	cfg := Config{Interval: time.Hour, Failures: 2, OpenFor: 50 * time.Millisecond}
	p := New(cfg, []Peer{{Name: "back-calls"}}, slog.New(slog.DiscardHandler), nil)
	refused := errors.New("lmtp: connection refused")

	p.Report("back-calls", refused)
	if _, err := p.Allow("back-calls"); err != nil {
		t.Fatalf("one failure opened the breaker: %v", err)
	}
	p.Report("back-calls", nil)
	p.Report("back-calls", refused)
	if _, err := p.Allow("back-calls"); err != nil {
		t.Fatalf("failures not in a row opened the breaker: %v", err)
	}
	p.Report("back-calls", refused)
	if _, err := p.Allow("back-calls"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Allow after two failures in a row = %v, want unavailable", err)
	}

	// Half-open after OpenFor: a call goes through, and its success
	// closes the breaker.
	time.Sleep(80 * time.Millisecond)
	if _, err := p.Allow("back-calls"); err != nil {
		t.Fatalf("Allow after OpenFor = %v, want a trial call", err)
	}
	p.Report("back-calls", nil)
	if st := p.State("back-calls"); st != "closed" {
		t.Fatalf("state after a successful trial = %q, want closed", st)
	}
}

func TestUnknownPeerIsUnavailable(t *testing.T) {
	p := New(Config{}, []Peer{{Name: "back-a"}}, slog.New(slog.DiscardHandler), nil)
	_, err := p.Allow("back-z")
	var ue *UnavailableError
	if !errors.As(err, &ue) || !ue.Unknown {
		t.Fatalf("Allow(unknown) = %v, want an unknown-peer UnavailableError", err)
	}
}

// metricValue reads one series from reg: family name, label peer, and
// label to when not empty.
func metricValue(t *testing.T, reg *prometheus.Registry, family, peer, to string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["peer"] != peer || labels["to"] != to {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s{peer=%q,to=%q}", family, peer, to)
	return 0
}

// member is a heartbeat server of one member of a back with a
// standby, whose lease can be changed.
type member struct {
	srv   *httptest.Server
	lease atomic.Pointer[node.LeaseStatus]
	down  atomic.Bool
}

func startMember(t *testing.T, state string, fence uint64) *member {
	m := &member{}
	m.set(state, fence)
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(node.Heartbeat{Node: "m", Role: "back", Healthy: true, Lease: m.lease.Load()})
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *member) set(state string, fence uint64) {
	m.lease.Store(&node.LeaseStatus{Back: "b1", State: state, Fence: fence})
}

func TestBackWithAStandbyRoutesToTheActiveMember(t *testing.T) {
	one, two := startMember(t, "active", 1), startMember(t, "standby", 1)
	cfg := Config{Interval: 20 * time.Millisecond, Failures: 3, OpenFor: time.Hour}
	p := New(cfg, []Peer{
		{Name: "b1", Member: "b1/1", Heartbeat: one.srv.URL + "/heartbeat"},
		{Name: "b1", Member: "b1/2", Heartbeat: two.srv.URL + "/heartbeat"},
	}, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitRoute := func(want string) {
		t.Helper()
		start := time.Now()
		for {
			got, err := p.Route("b1")
			if got == want && err == nil {
				return
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("route of b1 = %q, %v; want %q", got, err, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	waitRoute("b1/1")
	if got, err := p.Allow("b1"); err != nil || got != "b1/1" {
		t.Fatalf("Allow with b1/1 active = %q, %v; want b1/1", got, err)
	}

	// The standby takes the lease while the former active still
	// answers as active, as after a pause: the higher fence wins.
	two.set("active", 2)
	waitRoute("b1/2")

	// Neither member active: the back is unavailable, as a breaker
	// that is open.
	one.set("standby", 2)
	two.down.Store(true)
	start := time.Now()
	for {
		if _, err := p.Allow("b1"); err != nil {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("b1 still allowed with no member active and reachable")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := p.Allow("b1"); !errors.Is(err, ErrUnavailable) || p.State("b1") != "open" {
		t.Fatalf("Allow = %v, State = %q; want unavailable and open", err, p.State("b1"))
	}

	// The first member takes over again.
	one.set("active", 3)
	waitRoute("b1/1")
	st := p.Status()
	if len(st) != 2 || st[0].Node != "b1/1" || !st[0].Routed || st[0].Lease == nil || st[0].Lease.Fence != 3 ||
		st[1].Routed || st[1].State != "open" {
		t.Fatalf("Status = %+v", st)
	}
}

func TestRecoveredIsToldWhenABackMayBeCalledAgain(t *testing.T) {
	one, two := startMember(t, "active", 1), startMember(t, "standby", 1)
	single := startMember(t, "active", 1)
	cfg := Config{Interval: 20 * time.Millisecond, Failures: 2, OpenFor: 50 * time.Millisecond}
	p := New(cfg, []Peer{
		{Name: "b1", Member: "b1/1", Heartbeat: one.srv.URL + "/heartbeat"},
		{Name: "b1", Member: "b1/2", Heartbeat: two.srv.URL + "/heartbeat"},
		{Name: "b2", Heartbeat: single.srv.URL + "/heartbeat"},
	}, slog.New(slog.DiscardHandler), nil)
	told := make(chan string, 16)
	p.Recovered = func(back string) { told <- back }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wait := func(want string) {
		t.Helper()
		timeout := time.After(2 * time.Second)
		for {
			select {
			case got := <-told:
				if got == want {
					return
				}
			case <-timeout:
				t.Fatalf("Recovered not told of %s", want)
			}
		}
	}
	wait("b1") // first routed to b1/1

	// The standby takes over: mail held for b1 may go now.
	two.set("active", 2)
	wait("b1")

	// A single back's breaker opens, then closes again.
	single.down.Store(true)
	waitState(t, p, "b2", "open", 2*time.Second)
	single.down.Store(false)
	wait("b2")
}

// TestOutcomeCountsAgainstTheMemberCalled checks that a call's outcome
// goes to the member it was routed to when it started: a call to the
// former active that fails after a takeover does not open the new
// active's breaker.
func TestOutcomeCountsAgainstTheMemberCalled(t *testing.T) {
	one, two := startMember(t, "active", 1), startMember(t, "standby", 1)
	cfg := Config{Interval: 20 * time.Millisecond, Failures: 1, OpenFor: time.Hour}
	p := New(cfg, []Peer{
		{Name: "b1", Member: "b1/1", Heartbeat: one.srv.URL + "/heartbeat"},
		{Name: "b1", Member: "b1/2", Heartbeat: two.srv.URL + "/heartbeat"},
	}, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	allow := func(want string) string {
		t.Helper()
		start := time.Now()
		for {
			got, err := p.Allow("b1")
			if got == want && err == nil {
				return got
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("Allow(b1) = %q, %v; want %q", got, err, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// A call starts on the first member; the second takes over while
	// it runs, and the call then fails.
	call := allow("b1/1")
	two.set("active", 2)
	allow("b1/2")
	p.Report(call, errors.New("lmtp: connection reset"))

	if st := p.State("b1/2"); st != "closed" {
		t.Fatalf("new active's breaker %q after a failed call to the former one, want closed", st)
	}
	if got, err := p.Allow("b1"); err != nil || got != "b1/2" {
		t.Fatalf("Allow(b1) = %q, %v after the failed call; want b1/2", got, err)
	}
	if st := p.State("b1/1"); st != "open" {
		t.Fatalf("former active's breaker %q, want open from the failure reported to it", st)
	}
	// The back's name is no breaker for a back listed twice.
	p.Report("b1", errors.New("refused"))
	if st := p.State("b1/2"); st != "closed" {
		t.Fatalf("new active's breaker %q after a report under the back's name, want closed", st)
	}
}
