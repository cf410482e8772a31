package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/lease"
	"github.com/egretair/egret/mailcore/node"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/store"
)

// Standby backs. A back may run as two processes, an active and a
// standby, over one store folder: both have the same node.back and
// different node.names, and a front lists the back twice in
// cluster.backs. Which one serves is decided by a lease in the database
// (package lease); every back takes one, so a back that runs alone
// holds its own and takes it back at once when it restarts.
//
// A member that holds the lease opens the store from disk under its
// fence (store.Store.Take) and lets LMTP and IMAP connections through.
// A member that does not hold it touches nothing in the folder and
// refuses them: LMTP with 421, IMAP with BYE [UNAVAILABLE]. A member
// that loses the lease stops writing at once and cuts its connections;
// the fronts' queue sends the cut deliveries again to the new holder,
// whose store drops a copy it has already by its queue id.
//
// Fronts route a back's work to the member whose heartbeat says it is
// active, with the highest fence (see package peer). Each call is
// routed once, as it starts, and its outcome counts for the member it
// went to (see homes.call).

// backPair is a back member's lease on its store and the connections
// it serves under it.
type backPair struct {
	keeper *lease.Keeper
	mail   *store.Store
	folder string // the store folder, for the log
	log    *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// openBackStore opens the mail store: on a back, shared with a possible
// standby and served under a lease, which it tries once to take before
// the node serves; on other roles, plainly.
func (a *app) openBackStore(ctx context.Context, dir *directory.Store) (*store.Store, *backPair, error) {
	path := filepath.Join(a.cfg.Node.DataDir, "mail")
	if a.cfg.Node.Role != "back" {
		st, err := store.Open(path, a.log)
		return st, nil, err
	}
	db, err := dir.SQL()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.OpenShared(path, a.log)
	if err != nil {
		return nil, nil, err
	}
	p := &backPair{mail: st, folder: path, log: a.log, conns: map[net.Conn]struct{}{}}
	p.keeper = &lease.Keeper{
		Lease: lease.Lease{DB: db, Name: a.cfg.backName(),
			Holder: a.cfg.nodeName(), TTL: a.cfg.Cluster.LeaseTTL},
		Gained: p.gained,
		Lost:   p.lost,
		Check:  p.check,
		Log:    a.log,
	}
	p.keeper.Try(ctx)
	return st, p, nil
}

// gained serves the store under the new fence, once the folder is
// found to be the store the lease names. The first holder records the
// folder's id in the lease.
func (p *backPair) gained(ctx context.Context, fence uint64) error {
	l := &p.keeper.Lease
	ctx, cancel := context.WithTimeout(ctx, l.TTL/2)
	defer cancel()
	row, err := l.Read(ctx)
	if err != nil {
		return err
	}
	err = p.mail.Take(store.Fence{
		Number:  fence,
		Holding: func() error { return p.keeper.Holding(fence) },
		Lost:    func() { p.keeper.Drop("the store folder holds a higher fence") },
		Broken:  func(err error) { p.keeper.GiveUp(err.Error()) },
		StoreID: row.StoreID,
	})
	if err != nil {
		return err
	}
	if row.StoreID == "" {
		if err := l.RecordStore(ctx, fence, p.mail.ID()); err != nil {
			p.mail.Stand()
			return err
		}
		p.log.Info("store id recorded in the lease", "back", l.Name,
			"store_id", p.mail.ID(), "folder", p.folder)
	}
	return nil
}

// check reads the store folder's fence for the keeper: a newer
// holder's fence is the lease lost.
func (p *backPair) check() error {
	err := p.mail.Verify()
	if errors.Is(err, store.ErrFenced) {
		return fmt.Errorf("%w: %w", lease.ErrLost, err)
	}
	return err
}

// lost stops writing and cuts every connection served under the lease.
func (p *backPair) lost(string) {
	p.mail.Stand()
	p.mu.Lock()
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// status answers the member's lease for its heartbeat. A standby reads
// the holder from the database, briefly: a heartbeat must not stall.
func (p *backPair) status(ctx context.Context) *node.LeaseStatus {
	st := &node.LeaseStatus{Back: p.keeper.Lease.Name, State: "standby"}
	if fence, active := p.keeper.Status(); active {
		st.State, st.Fence, st.Holder = "active", fence, p.keeper.Lease.Holder
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if row, err := p.keeper.Lease.Read(ctx); err == nil {
		st.Fence, st.Holder = row.Fence, row.Holder
	}
	return st
}

// Refusals a member gives while it stands by.
const (
	lmtpStandby = "421 4.3.0 Standby node: this back does not serve its store now\r\n"
	imapStandby = "* BYE [UNAVAILABLE] Standby node, try again\r\n"
)

// gate wraps a service's listener: its connections go to the server
// while the member is active, and get refusal while it stands by.
func (p *backPair) gate(ln net.Listener, refusal string) net.Listener {
	if p == nil {
		return ln
	}
	return &gateListener{Listener: ln, pair: p, refusal: refusal}
}

// gateListener is a listener seen through a backPair's gate.
type gateListener struct {
	net.Listener
	pair    *backPair
	refusal string
}

// Accept answers the next connection to serve; the others are refused
// on the side.
func (g *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := g.pair.admit(c); tc != nil {
			return tc, nil
		}
		go refuse(c, g.refusal)
	}
}

// admit answers c, tracked so that losing the lease cuts it, or nil
// while the member stands by.
func (p *backPair) admit(c net.Conn) net.Conn {
	if _, active := p.keeper.Status(); !active {
		return nil
	}
	tc := &trackedConn{Conn: c, pair: p}
	p.mu.Lock()
	p.conns[tc] = struct{}{}
	p.mu.Unlock()
	// The lease may have gone between the check and the entry, after
	// the cut: the connection is then cut here.
	if _, active := p.keeper.Status(); !active {
		tc.Close()
	}
	return tc
}

// refuse writes the refusal and hangs up.
func refuse(c net.Conn, refusal string) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, refusal)
	c.Close()
}

// trackedConn is a connection served under the lease.
type trackedConn struct {
	net.Conn
	pair *backPair
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.pair.mu.Lock()
	delete(c.pair.conns, c)
	c.pair.mu.Unlock()
	return c.Conn.Close()
}

// node answers the back node a breaker's name stands for, as
// peer.Peers.Allow answers it: a member of a back listed twice by its
// member name, else the back listed once under that name.
func (h *homes) node(breaker string) (backNode, bool) {
	for _, m := range h.members {
		if m.Member != "" && m.Member == breaker {
			return m, true
		}
	}
	return backNamed(h.backs, breaker)
}

// call answers the node that a call to the back named name goes to,
// and the breaker its outcome is reported to: for a back listed twice,
// the member routed to as the call starts, so that a takeover while
// it runs lays nothing on the new active. It answers the breakers'
// *peer.UnavailableError when the back may not be called now, or no
// back has that name.
func (h *homes) call(name string) (backNode, string, error) {
	breaker, err := h.peers.Allow(name)
	if err != nil {
		return backNode{}, "", err
	}
	b, ok := h.node(breaker)
	if !ok {
		return backNode{}, "", fmt.Errorf("no back node named %q in cluster.backs", name)
	}
	return b, breaker, nil
}

// retryOnRecovery makes the queue try the mail it holds for the mail
// domain as soon as a back may take it again (its breaker closed, or a
// standby took over), rather than after the retry delay: mail deferred
// by a hung active need not wait a minute or more once the standby
// serves.
func (f *frontParts) retryOnRecovery(q *queue.Queue, domain string) {
	suffix := "@" + strings.ToLower(domain)
	f.peers.Recovered = func(string) {
		q.Kick(func(rc queue.Recipient) bool {
			return strings.HasSuffix(strings.ToLower(rc.Address), suffix)
		})
	}
}
