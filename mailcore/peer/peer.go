package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/egretair/egret/mailcore/node"
)

// Breaker metrics. The label peer takes the back nodes' names; to takes
// "closed", "half-open" and "open".
var (
	metricState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "egret_breaker_state",
		Help: "A front's breaker for a back node: 0 closed, 1 half-open, 2 open.",
	}, []string{"peer"})
	metricTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "egret_breaker_transitions_total",
		Help: "Changes of state of a front's breaker for a back node.",
	}, []string{"peer", "to"})
)

// Defaults for the zero Config.
const (
	DefaultInterval = 2 * time.Second
	DefaultFailures = 3
)

// Config tunes the breakers. The zero value is usable.
type Config struct {
	// Interval is the time between two heartbeat polls of one back;
	// zero means DefaultInterval.
	Interval time.Duration
	// Timeout bounds one poll; zero means Interval.
	Timeout time.Duration
	// Failures is how many failures in a row open a breaker; zero
	// means DefaultFailures.
	Failures uint32
	// OpenFor is how long a breaker stays open before it lets a call
	// or heartbeat try again; zero means Interval.
	OpenFor time.Duration
	// Client polls the heartbeats; nil means a client of its own.
	Client *http.Client
}

// Peer is one back node.
type Peer struct {
	// Name is the node's name, as accounts' home nodes give it.
	Name string
	// Heartbeat is the URL of its heartbeat,
	// http://HOST:PORT/heartbeat.
	Heartbeat string
}

// UnavailableError is Allow's answer for a back that is not to be
// called now. It is temporary.
type UnavailableError struct {
	Peer string
	// Unknown is true for a name no back carries.
	Unknown bool
}

func (e *UnavailableError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("peer: no back node named %q", e.Peer)
	}
	return fmt.Sprintf("peer: back node %s unavailable (breaker open)", e.Peer)
}

// Temporary reports that the condition passes: callers retry later.
func (e *UnavailableError) Temporary() bool { return true }

// ErrUnavailable matches every *UnavailableError with errors.Is.
var ErrUnavailable = errors.New("peer: back node unavailable")

// Is lets errors.Is(err, ErrUnavailable) match.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Peers holds one breaker per back node. Make it with New.
type Peers struct {
	cfg   Config
	log   *slog.Logger
	peers []Peer
	cbs   map[string]*gobreaker.CircuitBreaker[struct{}]

	mu   sync.Mutex
	last map[string]string // peer -> last heartbeat error, for logs
}

// New makes the breakers for peers, all closed. reg, when not nil, gets
// the breaker metrics.
func New(cfg Config, peers []Peer, log *slog.Logger, reg prometheus.Registerer) *Peers {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = cfg.Interval
	}
	if cfg.Failures == 0 {
		cfg.Failures = DefaultFailures
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = cfg.Interval
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if log == nil {
		log = slog.Default()
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{metricState, metricTransitions} {
			var are prometheus.AlreadyRegisteredError
			if err := reg.Register(c); err != nil && !errors.As(err, &are) {
				panic(fmt.Sprintf("peer: metrics: %v", err))
			}
		}
	}
	p := &Peers{
		cfg:   cfg,
		log:   log.With("service", "peers"),
		peers: slices.Clone(peers),
		cbs:   map[string]*gobreaker.CircuitBreaker[struct{}]{},
		last:  map[string]string{},
	}
	for _, pr := range peers {
		p.cbs[pr.Name] = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name: pr.Name,
			// One success in half-open closes the breaker.
			MaxRequests: 1,
			Timeout:     cfg.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= cfg.Failures
			},
			OnStateChange: p.changed,
		})
		metricState.WithLabelValues(pr.Name).Set(0)
		for _, to := range []string{"closed", "half-open", "open"} {
			metricTransitions.WithLabelValues(pr.Name, to).Add(0)
		}
	}
	return p
}

// changed logs and counts a transition; gobreaker calls it with the
// breaker's lock held, so it touches nothing of the breaker.
func (p *Peers) changed(name string, from, to gobreaker.State) {
	metricState.WithLabelValues(name).Set(float64(stateValue(to)))
	metricTransitions.WithLabelValues(name, to.String()).Inc()
	p.mu.Lock()
	cause := p.last[name]
	p.mu.Unlock()
	switch to {
	case gobreaker.StateOpen:
		p.log.Warn("breaker opened", "peer", name, "from", from.String(), "cause", cause)
	case gobreaker.StateHalfOpen:
		p.log.Info("breaker half-open", "peer", name)
	case gobreaker.StateClosed:
		p.log.Info("breaker closed", "peer", name)
	}
}

func stateValue(s gobreaker.State) int {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// Allow answers nil when peer may be called now, and an
// *UnavailableError when its breaker is open or no back has that name.
func (p *Peers) Allow(peer string) error {
	cb, ok := p.cbs[peer]
	if !ok {
		return &UnavailableError{Peer: peer, Unknown: true}
	}
	if cb.State() == gobreaker.StateOpen {
		return &UnavailableError{Peer: peer}
	}
	return nil
}

// Report feeds the outcome of a call to peer to its breaker: nil for a
// call the back answered, the error for one that shows it unwell. While
// the breaker is open, outcomes are not counted; in half-open the first
// one decides.
func (p *Peers) Report(peer string, err error) {
	cb, ok := p.cbs[peer]
	if !ok {
		return
	}
	if err != nil {
		p.mu.Lock()
		p.last[peer] = err.Error()
		p.mu.Unlock()
	}
	cb.Execute(func() (struct{}, error) { return struct{}{}, err })
}

// State answers peer's breaker state: "closed", "half-open" or "open";
// "" for an unknown peer.
func (p *Peers) State(peer string) string {
	cb, ok := p.cbs[peer]
	if !ok {
		return ""
	}
	return cb.State().String()
}

// Status answers every breaker's state, in the order of the peers
// given to New, for the front's heartbeat.
func (p *Peers) Status() []node.BreakerStatus {
	out := make([]node.BreakerStatus, 0, len(p.peers))
	for _, pr := range p.peers {
		out = append(out, node.BreakerStatus{Node: pr.Name, State: p.State(pr.Name)})
	}
	return out
}

// Run polls every back's heartbeat until ctx ends, then answers nil. It
// suits node.Tree.Add.
func (p *Peers) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, pr := range p.peers {
		wg.Go(func() { p.poll(ctx, pr) })
	}
	wg.Wait()
	return nil
}

// poll feeds one back's heartbeats to its breaker.
func (p *Peers) poll(ctx context.Context, pr Peer) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		_, err := node.Fetch(pctx, p.cfg.Client, pr.Heartbeat)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.log.Debug("heartbeat failed", "peer", pr.Name, "err", err)
		}
		p.Report(pr.Name, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
