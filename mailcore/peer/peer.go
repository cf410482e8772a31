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

// Breaker metrics. The label peer takes the breakers' names: a back
// node's name, or for a back listed twice in cluster.backs one per
// member, the name with the entry's place among the two, as b1/1 and
// b1/2; to takes "closed", "half-open" and "open".
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

// Peer is one back node, or one member of a back that runs as an
// active and a standby.
type Peer struct {
	// Name is the back's name, as accounts' home nodes give it.
	Name string
	// Member names this member of a back listed more than once; ""
	// for a back listed once, whose breaker is then called Name.
	Member string
	// Heartbeat is the URL of its heartbeat,
	// http://HOST:PORT/heartbeat.
	Heartbeat string
}

// key answers the name of the peer's breaker.
func (pr Peer) key() string {
	if pr.Member != "" {
		return pr.Member
	}
	return pr.Name
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

// Peers holds one breaker per back node, or per member of a back with
// a standby. Make it with New.
type Peers struct {
	// Recovered, when set before Run, is called with a back's name,
	// in a goroutine of its own, when calls to it may succeed again:
	// its breaker closed, or it is routed to another member (a standby
	// took over). A front's queue then tries the mail it holds for
	// the back at once rather than after its retry delay.
	Recovered func(back string)

	cfg     Config
	log     *slog.Logger
	peers   []Peer
	cbs     map[string]*gobreaker.CircuitBreaker[struct{}]
	members map[string][]string // back -> its members' breakers
	backOf  map[string]string   // breaker -> its back

	mu     sync.Mutex
	last   map[string]string            // breaker -> last error, for logs
	leases map[string]*node.LeaseStatus // breaker -> its last heartbeat's lease
	routed map[string]string            // back -> member last routed to
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

		members: map[string][]string{},
		backOf:  map[string]string{},
		leases:  map[string]*node.LeaseStatus{},
		routed:  map[string]string{},
	}
	for _, pr := range peers {
		name := pr.key()
		p.members[pr.Name] = append(p.members[pr.Name], name)
		p.backOf[name] = pr.Name
		p.cbs[name] = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name: name,
			// One success in half-open closes the breaker.
			MaxRequests: 1,
			Timeout:     cfg.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= cfg.Failures
			},
			OnStateChange: p.changed,
		})
		metricState.WithLabelValues(name).Set(0)
		for _, to := range []string{"closed", "half-open", "open"} {
			metricTransitions.WithLabelValues(name, to).Add(0)
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
		p.recovered(p.backOf[name])
	}
}

// recovered tells Recovered of a back that may be called again.
func (p *Peers) recovered(back string) {
	if p.Recovered != nil {
		go p.Recovered(back)
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

// Route answers the breaker name of the member to call for peer: the
// back itself when it is listed once, else the member whose heartbeat
// says it holds the lease, with the highest fence among those whose
// breaker is not open. A member name is answered as it is. It answers
// an *UnavailableError when no member is active and reachable.
func (p *Peers) Route(peer string) (string, error) {
	ms, ok := p.members[peer]
	if !ok {
		if _, ok := p.cbs[peer]; ok {
			return peer, nil
		}
		return "", &UnavailableError{Peer: peer, Unknown: true}
	}
	if len(ms) == 1 {
		return ms[0], nil
	}
	// The leases are copied out first: a breaker calls changed, which
	// takes p.mu, with its own lock held.
	leases := make([]*node.LeaseStatus, len(ms))
	p.mu.Lock()
	for i, m := range ms {
		leases[i] = p.leases[m]
	}
	p.mu.Unlock()
	best, fence := "", uint64(0)
	for i, m := range ms {
		l := leases[i]
		if l == nil || l.State != "active" || p.cbs[m].State() == gobreaker.StateOpen {
			continue
		}
		if best == "" || l.Fence > fence {
			best, fence = m, l.Fence
		}
	}
	if best == "" {
		return "", &UnavailableError{Peer: peer}
	}
	return best, nil
}

// Allow answers the breaker a call to peer goes through now, when peer
// may be called: peer itself for a back listed once, else the member
// routed to (see Route). The call is made to that member and its
// outcome reported under that name, so that a takeover while the call
// runs does not lay it on the new active. Allow answers an
// *UnavailableError when the breaker is open, when peer is a back with
// a standby and no member is active and reachable, or when no back has
// that name.
func (p *Peers) Allow(peer string) (string, error) {
	name, err := p.Route(peer)
	if err != nil {
		return "", err
	}
	if p.cbs[name].State() == gobreaker.StateOpen {
		return "", &UnavailableError{Peer: peer}
	}
	return name, nil
}

// Report feeds the outcome of a call to the breaker Allow answered for
// it, by that name (for a back listed once, the back's): nil for a
// call the back answered, the error for one that shows it unwell. A
// name with no breaker is ignored. While the breaker is open, outcomes
// are not counted; in half-open the first one decides.
func (p *Peers) Report(breaker string, err error) {
	if _, ok := p.cbs[breaker]; !ok {
		return
	}
	p.report(breaker, err)
}

// report feeds one breaker by its name.
func (p *Peers) report(peer string, err error) {
	cb := p.cbs[peer]
	if err != nil {
		p.mu.Lock()
		p.last[peer] = err.Error()
		p.mu.Unlock()
	}
	cb.Execute(func() (struct{}, error) { return struct{}{}, err })
}

// State answers peer's breaker state: "closed", "half-open" or "open";
// "" for an unknown peer. A back with a standby is "open" while no
// member can be routed to, else in its routed member's state.
func (p *Peers) State(peer string) string {
	name, err := p.Route(peer)
	var ue *UnavailableError
	if errors.As(err, &ue) && !ue.Unknown {
		return gobreaker.StateOpen.String()
	}
	if err != nil {
		return ""
	}
	return p.cbs[name].State().String()
}

// Status answers every breaker's state, in the order of the peers
// given to New, for the front's heartbeat, with each member's lease.
func (p *Peers) Status() []node.BreakerStatus {
	out := make([]node.BreakerStatus, 0, len(p.peers))
	for _, pr := range p.peers {
		name := pr.key()
		st := node.BreakerStatus{Node: name, State: p.cbs[name].State().String()}
		if routed, err := p.Route(pr.Name); err == nil && routed == name && pr.Member != "" {
			st.Routed = true
		}
		p.mu.Lock()
		if l := p.leases[name]; l != nil {
			c := *l
			st.Lease = &c
		}
		p.mu.Unlock()
		out = append(out, st)
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
		hb, err := node.Fetch(pctx, p.cfg.Client, pr.Heartbeat)
		cancel()
		if ctx.Err() != nil {
			return
		}
		name := pr.key()
		if err != nil {
			p.log.Debug("heartbeat failed", "peer", name, "err", err)
		}
		if hb.Node != "" {
			p.mu.Lock()
			p.leases[name] = hb.Lease
			p.mu.Unlock()
		}
		p.report(name, err)
		if pr.Member != "" {
			p.noteRoute(pr.Name)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// noteRoute logs a change of the member a back with a standby is routed
// to, or that none can be.
func (p *Peers) noteRoute(back string) {
	to, err := p.Route(back)
	p.mu.Lock()
	from := p.routed[back]
	p.routed[back] = to
	var fence uint64
	if l := p.leases[to]; l != nil {
		fence = l.Fence
	}
	p.mu.Unlock()
	switch {
	case to == from:
	case err != nil:
		p.log.Warn("back unroutable", "peer", back, "from", from, "cause", err)
	default:
		p.log.Info("back routed", "peer", back, "member", to, "from", from, "fence", fence)
		// A half-open member is only being tried: its breaker
		// closing tells Recovered, should it answer.
		if p.cbs[to].State() == gobreaker.StateClosed {
			p.recovered(back)
		}
	}
}
