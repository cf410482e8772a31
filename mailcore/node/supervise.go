package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thejerf/suture/v4"
)

// Supervision metrics. The label service takes the names given to
// Tree.Add: smtp, submission, submission_tls, imap, lmtp, http, queue,
// ldap_mirror, oa_pull, purger, heartbeats.
var (
	metricRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "egret_service_restarts_total",
		Help: "Restarts of a node's service after a panic or an unexpected exit.",
	}, []string{"service"})
	metricUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "egret_service_up",
		Help: "1 while the service runs, 0 while it is restarted or stopped.",
	}, []string{"service"})
)

// Backoff of the tree: past failureThreshold failures, decaying by half
// every failureDecay, restarts wait failureBackoff. A service that fails
// at once on every start (a port taken by another program) thus costs a
// few quick tries, then one try every failureBackoff.
const (
	failureThreshold = 5
	failureDecay     = 30 * time.Second
	failureBackoff   = 10 * time.Second
)

// Service states, as the heartbeat shows them.
const (
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateStopped    = "stopped"
)

// ErrExited is the cause given when a service's run returned on its own.
var ErrExited = errors.New("node: service exited unexpectedly")

// Tree is a node's supervisor. Its zero value is not usable; make one
// with NewTree.
type Tree struct {
	log *slog.Logger
	sup *suture.Supervisor

	mu       sync.Mutex
	services []*service
	byName   map[string]*service
	cancel   context.CancelFunc
	done     <-chan error
}

// ServiceStatus is one service's state, as the heartbeat shows it.
type ServiceStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	// LastRestart and LastCause describe the latest failure, if any.
	LastRestart *time.Time `json:"last_restart,omitempty"`
	LastCause   string     `json:"last_cause,omitempty"`
}

// NewTree answers an empty tree whose log lines name the node. reg, when
// not nil, gets the supervision metrics.
func NewTree(nodeName string, log *slog.Logger, reg prometheus.Registerer) *Tree {
	if log == nil {
		log = slog.Default()
	}
	t := &Tree{
		log:    log.With(slog.String("node", nodeName)),
		byName: map[string]*service{},
	}
	if reg != nil {
		register(reg, metricRestarts, metricUp)
	}
	t.sup = suture.New(nodeName, suture.Spec{
		EventHook:        t.event,
		FailureThreshold: failureThreshold,
		FailureDecay:     failureDecay.Seconds(),
		FailureBackoff:   failureBackoff,
		// Each service drains itself when removed (see Stop); this
		// bounds only the final cancel of whatever is left.
		Timeout: 5 * time.Second,
	})
	return t
}

// register adds collectors to reg; a second tree in one process (the
// tests) finds them there already, which is fine.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	for _, c := range cs {
		var are prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &are) {
			panic(fmt.Sprintf("node: metrics: %v", err))
		}
	}
}

// Add puts a service in the tree under name. run must block until ctx
// ends, stop what it started, and return; a return before that, or a
// panic, is a failure and the service is run again. Services added
// before Start begin with it; later ones begin at once.
func (t *Tree) Add(name string, run func(ctx context.Context) error) {
	s := &service{name: name, run: run, tree: t, inject: make(chan struct{}, 1)}
	t.mu.Lock()
	if _, dup := t.byName[name]; dup {
		t.mu.Unlock()
		panic("node: service " + name + " added twice")
	}
	t.services = append(t.services, s)
	t.byName[name] = s
	t.mu.Unlock()
	metricRestarts.WithLabelValues(name).Add(0)
	metricUp.WithLabelValues(name).Set(0)
	s.token = t.sup.Add(s)
}

// Start runs the tree until Stop or until ctx ends.
func (t *Tree) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	t.mu.Lock()
	t.cancel = cancel
	t.mu.Unlock()
	t.done = t.sup.ServeBackground(ctx)
}

// Stop removes the services in the reverse of the order they were
// added, giving each up to grace to drain, then ends the tree.
func (t *Tree) Stop(grace time.Duration) {
	t.mu.Lock()
	services := append([]*service(nil), t.services...)
	for _, s := range services {
		s.stopping = true
	}
	cancel := t.cancel
	t.mu.Unlock()
	if cancel == nil {
		return
	}
	for i := len(services) - 1; i >= 0; i-- {
		s := services[i]
		err := t.sup.RemoveAndWait(s.token, grace)
		if err != nil {
			t.log.Warn("service did not stop in time",
				slog.String("service", s.name), slog.Any("err", err))
		}
	}
	cancel()
	<-t.done
}

// Status answers every service's state, in the order they were added.
func (t *Tree) Status() []ServiceStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ServiceStatus, 0, len(t.services))
	for _, s := range t.services {
		st := ServiceStatus{Name: s.name, Restarts: s.restarts, LastCause: s.lastCause}
		switch {
		case s.running:
			st.State = StateRunning
		case s.stopping:
			st.State = StateStopped
		default:
			st.State = StateRestarting
		}
		if !s.lastRestart.IsZero() {
			at := s.lastRestart
			st.LastRestart = &at
		}
		out = append(out, st)
	}
	return out
}

// Fail makes the named service panic once, as a fault would: its run is
// cancelled, and when it has returned the service panics in its
// supervised goroutine. It answers false when no such service runs. It
// exists so that tests and drills can watch a restart happen.
func (t *Tree) Fail(name string) bool {
	t.mu.Lock()
	s := t.byName[name]
	t.mu.Unlock()
	if s == nil {
		return false
	}
	select {
	case s.inject <- struct{}{}:
	default:
	}
	return true
}

// event turns suture's reports into log lines, metrics and state.
func (t *Tree) event(e suture.Event) {
	switch e := e.(type) {
	case suture.EventServicePanic:
		t.failed(e.ServiceName, "panic: "+e.PanicMsg, e.Restarting,
			slog.String("stack", e.Stacktrace))
	case suture.EventServiceTerminate:
		t.failed(e.ServiceName, fmt.Sprint(e.Err), e.Restarting)
	case suture.EventBackoff:
		t.log.Error("services failing repeatedly; restarts paused",
			slog.Duration("pause", failureBackoff))
	case suture.EventResume:
		t.log.Info("restarts resumed")
	case suture.EventStopTimeout:
		t.log.Warn("service did not stop in time", slog.String("service", e.ServiceName))
	}
}

// failed records one failure of the named service.
func (t *Tree) failed(name, cause string, now bool, extra ...any) {
	at := time.Now()
	t.mu.Lock()
	s := t.byName[name]
	if s != nil {
		s.restarts++
		s.lastRestart = at
		s.lastCause = cause
	}
	t.mu.Unlock()
	metricRestarts.WithLabelValues(name).Inc()

	msg := "service restarted"
	if !now {
		msg = "service failed; restart after the pause"
	}
	attrs := append([]any{
		slog.String("service", name),
		slog.String("cause", cause),
		slog.Time("failed_at", at),
	}, extra...)
	t.log.Error(msg, attrs...)
}

// service is one entry of the tree, as suture runs it.
type service struct {
	name   string
	run    func(ctx context.Context) error
	tree   *Tree
	token  suture.ServiceToken
	inject chan struct{}

	// Guarded by tree.mu.
	running     bool
	stopping    bool
	restarts    int
	lastRestart time.Time
	lastCause   string
}

// String names the service in suture's reports.
func (s *service) String() string { return s.name }

// Serve runs the service once, in suture's goroutine, so that a panic
// in run is suture's to recover.
func (s *service) Serve(ctx context.Context) error {
	s.setRunning(true)
	defer s.setRunning(false)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var injected atomic.Bool
	go func() {
		select {
		case <-s.inject:
			injected.Store(true)
			cancel()
		case <-runCtx.Done():
		}
	}()

	err := s.run(runCtx)
	if injected.Load() && ctx.Err() == nil {
		panic("failure injected into " + s.name)
	}
	if ctx.Err() != nil {
		// Asked to stop: not a failure, whatever the run says.
		return ctx.Err()
	}
	if err == nil {
		err = ErrExited
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

func (s *service) setRunning(on bool) {
	s.tree.mu.Lock()
	s.running = on
	s.tree.mu.Unlock()
	v := 0.0
	if on {
		v = 1
	}
	metricUp.WithLabelValues(s.name).Set(v)
}
