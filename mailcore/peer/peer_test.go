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
			if err := p.Allow(name); err != nil {
				t.Fatalf("Allow with the back up: %v", err)
			}

			// Three failed polls: open within about 3 intervals
			// plus a timeout.
			b.mode.Store(tc.down)
			took := waitState(t, p, name, "open", 2*time.Second)
			t.Logf("opened after %v", took)
			err := p.Allow(name)
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
			if err := p.Allow(name); err != nil {
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
	if err := p.Allow("back-calls"); err != nil {
		t.Fatalf("one failure opened the breaker: %v", err)
	}
	p.Report("back-calls", nil)
	p.Report("back-calls", refused)
	if err := p.Allow("back-calls"); err != nil {
		t.Fatalf("failures not in a row opened the breaker: %v", err)
	}
	p.Report("back-calls", refused)
	if err := p.Allow("back-calls"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Allow after two failures in a row = %v, want unavailable", err)
	}

	// Half-open after OpenFor: a call goes through, and its success
	// closes the breaker.
	time.Sleep(80 * time.Millisecond)
	if err := p.Allow("back-calls"); err != nil {
		t.Fatalf("Allow after OpenFor = %v, want a trial call", err)
	}
	p.Report("back-calls", nil)
	if st := p.State("back-calls"); st != "closed" {
		t.Fatalf("state after a successful trial = %q, want closed", st)
	}
}

func TestUnknownPeerIsUnavailable(t *testing.T) {
	p := New(Config{}, []Peer{{Name: "back-a"}}, slog.New(slog.DiscardHandler), nil)
	err := p.Allow("back-z")
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
