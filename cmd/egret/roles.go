package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/api"
	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/imapd"
	"github.com/egretair/egret/mailcore/imapproxy"
	"github.com/egretair/egret/mailcore/lmtp"
	"github.com/egretair/egret/mailcore/node"
	"github.com/egretair/egret/mailcore/peer"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/store"
)

// Roles. A node of role "all" does everything itself. A cluster splits
// the work: fronts take SMTP, submission, HTTP and IMAP from the world
// and keep the queue; backs keep the mail store and take mail over
// LMTP, and IMAP sessions through the fronts' proxy login, from the
// fronts only. Every node reads the same MySQL database.
//
// Home node. Each account's mailboxes live on one back, the one the
// column accounts.home_node names. The directory records it when the
// account is created, by the API, the OA sync or as the postmaster
// mailbox: the back in cluster.backs that the fewest accounts name as
// home, the earliest listed on a tie (an OA import counts once and
// spreads its new accounts in turn). Adding a back to the list moves
// nobody; new accounts fill it until it holds as many as the others.
// An account with none, made by an older version or by a node with no
// backs configured, gets one the same way the first time a front looks
// it up, for a sign-in or a delivery, claimed so that the first front
// to write wins. A home is changed on purpose only, by "egret account
// move-home", which moves the mail with it.
//
// Mailbox facts of the API come from the account's back (see
// mailfacts.go). A front checks no quota at RCPT time: its own store
// is empty, so the check is the back's, at LMTP, whose 452 the queue
// retries and whose 552 it bounces.
//
// The web mailbox's pages that read mail are relayed by a front to the
// account's back (see webrelay.go), and a purge on a front removes the
// mail on the back (see mailbox.go).

// proxyIdentity is the authentication identity fronts sign in with on
// a back (see imapd.ProxyLogin).
const proxyIdentity = "egret-front"

// checkRole checks node.role and the cluster keys it needs.
func (c Config) checkRole() error {
	var errs []error
	switch c.Node.Role {
	case "all":
		return nil
	case "front", "back":
	default:
		return fmt.Errorf("node.role %q: want all, front or back", c.Node.Role)
	}
	if len(c.Cluster.ProxySecret) < 16 {
		errs = append(errs, fmt.Errorf("cluster.proxy_secret: role %s needs one of at least 16 characters", c.Node.Role))
	}
	if _, err := c.proxySources(); err != nil {
		errs = append(errs, err)
	}
	if c.isSQLite() {
		errs = append(errs, fmt.Errorf("database.url: role %s needs a MySQL database that every node reads", c.Node.Role))
	}
	backs, err := c.clusterBacks()
	if err != nil {
		errs = append(errs, err)
	}
	switch c.Node.Role {
	case "front":
		if err == nil && len(backs) == 0 {
			errs = append(errs, errors.New("cluster.backs: a front needs at least one back"))
		}
		if c.Cluster.BreakerInterval < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("cluster.breaker_interval %s: want at least 100ms", c.Cluster.BreakerInterval))
		}
	case "back":
		if c.LMTP.Addr == "" || strings.HasPrefix(c.LMTP.Addr, "unix:") {
			errs = append(errs, errors.New("lmtp.addr: a back takes LMTP from its fronts on HOST:PORT"))
		}
		if c.Cluster.LeaseTTL < time.Second {
			errs = append(errs, fmt.Errorf("cluster.lease_ttl %s: want at least 1s", c.Cluster.LeaseTTL))
		}
	}
	return errors.Join(errs...)
}

// isSQLite reports whether the directory is in SQLite.
func (c Config) isSQLite() bool {
	return strings.HasPrefix(c.Database.URL, "sqlite:")
}

// setHomeBacks gives the directory the backs of cluster.backs, in
// order, to home new accounts on; a node of role all names none.
func (a *app) setHomeBacks(s *directory.Store) error {
	if a.cfg.Node.Role == "all" {
		return nil
	}
	backs, err := a.cfg.clusterBacks()
	if err != nil {
		return err
	}
	names := make([]string, len(backs))
	for i, b := range backs {
		names[i] = b.Name
	}
	s.SetHomeBacks(names)
	return nil
}

// homes finds the back node of an account for a front.
type homes struct {
	dir   *directory.Store
	backs []backNode
	log   *slog.Logger
	// members and peers route a back listed twice to its active
	// member (see backpair.go).
	members []backNode
	peers   *peer.Peers
}

// lookup answers the name of the back that holds the account. A
// database that does not answer is an error rather than a guess: a
// back takes mail for any account, so a wrong guess would file it on
// a node the account's sessions never reach.
func (h *homes) lookup(ctx context.Context, accountID string) (string, error) {
	name, err := h.dir.HomeNode(ctx, accountID)
	if errors.Is(err, directory.ErrNotFound) {
		// No such account: nothing to record, and no mail to find.
		return h.backs[0].Name, nil
	}
	if err != nil {
		return "", err
	}
	if name != "" {
		return name, nil
	}

	// The first use claims the least loaded back. The pick depends on
	// the other accounts, so it is only good once written: an
	// unwritten pick could differ from the next one and split the
	// account's mail over two backs.
	names := make([]string, len(h.backs))
	for i, b := range h.backs {
		names[i] = b.Name
	}
	name, err = h.dir.LeastHomed(ctx, names)
	if err != nil {
		return "", err
	}
	got, err := h.dir.ClaimHomeNode(ctx, accountID, name)
	if err != nil {
		return "", err
	}
	h.log.Info("home node recorded", "account", accountID, "node", got)
	return got, nil
}

// HomeOf answers the name of the back that holds the account, for the
// IMAP proxy; "" when it cannot be read, which the proxy answers as a
// back that is unavailable.
func (h *homes) HomeOf(accountID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name, err := h.lookup(ctx, accountID)
	if err != nil {
		h.log.Warn("home node not read", "account", accountID, "err", err)
	}
	return name
}

// back answers the back named name; for a back listed twice, the
// member whose heartbeat says it is active now. It is for commands run
// once, which have no breakers: a front's calls find their node by the
// breakers' routing (see call).
func (h *homes) back(name string) (backNode, bool) {
	if m, ok := servingMember(context.Background(), h.members, name); ok {
		return m, true
	}
	return backNamed(h.backs, name)
}

// IMAPAddr answers the IMAP address of the back node the breaker
// named breaker stands for, for the proxy (see node).
func (h *homes) IMAPAddr(breaker string) (string, bool) {
	b, ok := h.node(breaker)
	return b.IMAP, ok
}

// newPeers makes a front's breakers, one per back, or per member of a
// back listed twice.
func newPeers(cfg Config, members []backNode, log *slog.Logger) *peer.Peers {
	var list []peer.Peer
	for _, b := range members {
		list = append(list, peer.Peer{Name: b.Name, Member: b.Member,
			Heartbeat: "http://" + b.HTTP + "/heartbeat"})
	}
	return peer.New(peer.Config{Interval: cfg.Cluster.BreakerInterval,
		Client: &http.Client{}}, list, log, api.Registry)
}

// backTransport is a front's queue transport for the mail domain: each
// recipient goes over LMTP to the back that holds its account.
//
// Failure semantics. A back whose breaker is open is not called: its
// recipients get a temporary error and the queue holds the mail until
// the breaker closes. A back that cannot be reached, or stops
// answering, fails its recipients temporarily too and is reported to
// its breaker; a back that answers, even to refuse, is reported well.
// For a back listed twice, the outcome goes to the member the
// transaction was sent to.
type backTransport struct {
	homes     *homes
	peers     *peer.Peers
	localName string
}

// Deliver groups the recipients by back and runs one LMTP transaction
// with each; see queue.Transport.
func (t *backTransport) Deliver(ctx context.Context, d queue.Delivery, body io.Reader) []error {
	out := make([]error, len(d.Recipients))
	groups := map[string][]int{}
	var order []string
	for i, to := range d.Recipients {
		name, err := t.homeOfAddress(ctx, to)
		if err != nil {
			out[i] = fmt.Errorf("lmtp: home node of %s: %w", to, err)
			continue
		}
		if _, ok := groups[name]; !ok {
			order = append(order, name)
		}
		groups[name] = append(groups[name], i)
	}

	// Several backs each need the message, so it is read whole once.
	msg, err := io.ReadAll(body)
	if err != nil {
		for i := range out {
			out[i] = fmt.Errorf("lmtp: message not read whole: %w", err)
		}
		return out
	}
	for _, name := range order {
		idx := groups[name]
		got := t.deliverTo(ctx, name, d, idx, msg)
		for k, i := range idx {
			out[i] = got[k]
		}
	}
	return out
}

// deliverTo runs the transaction with one back for the recipients idx.
func (t *backTransport) deliverTo(ctx context.Context, name string, d queue.Delivery, idx []int, msg []byte) []error {
	sub := d
	sub.Recipients = nil
	for _, i := range idx {
		sub.Recipients = append(sub.Recipients, d.Recipients[i])
	}
	fail := func(err error) []error {
		out := make([]error, len(idx))
		for k := range out {
			out[k] = err
		}
		return out
	}
	b, breaker, err := t.homes.call(name)
	if err != nil {
		return fail(fmt.Errorf("lmtp: %w", err))
	}
	c := &lmtp.Client{Addr: b.LMTP, LocalName: t.localName}
	got := c.Deliver(ctx, sub, bytes.NewReader(msg))
	t.peers.Report(breaker, connectionError(got))
	return got
}

// connectionError answers nil when the back answered at least once (a
// delivery, or a reply of its own), and otherwise the first error,
// which then says the back could not be talked to.
func connectionError(errs []error) error {
	for _, err := range errs {
		var se *smtp.SMTPError
		if err == nil || errors.As(err, &se) {
			return nil
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// homeOfAddress answers the back of the account that receives mail at
// addr. An address no account has goes to the first back, whose LMTP
// refuses it with the right reply; a directory that does not answer
// is an error, temporary for the queue.
func (t *backTransport) homeOfAddress(ctx context.Context, addr string) (string, error) {
	acct, err := t.homes.dir.LookupAddress(ctx, addr)
	if errors.Is(err, directory.ErrNotFound) {
		return t.homes.backs[0].Name, nil
	}
	if err != nil {
		return "", err
	}
	return t.homes.lookup(ctx, acct.ID)
}

// frontParts are what a front adds to a node: breakers for its backs,
// the way to their homes, and the queue's transport to them.
type frontParts struct {
	homes     *homes
	peers     *peer.Peers
	transport *backTransport
}

// front makes a front's parts from cluster.backs.
func (a *app) front(dir *directory.Store, log *slog.Logger) (*frontParts, error) {
	backs, err := a.cfg.clusterBacks()
	if err != nil {
		return nil, err
	}
	members, err := a.cfg.clusterMembers()
	if err != nil {
		return nil, err
	}
	p := newPeers(a.cfg, members, log)
	h := &homes{dir: dir, backs: backs, log: log, members: members, peers: p}
	return &frontParts{homes: h, peers: p,
		transport: &backTransport{homes: h, peers: p, localName: a.cfg.Node.Hostname}}, nil
}

// imapProxy makes the front's IMAP server, which relays each signed-in
// session to the account's back. accounts are those a single node's
// imapd gets: with the OpenID Connect provider set up they take tokens
// (tokenAccounts), and the front offers OAUTHBEARER and XOAUTH2 as imapd
// does, checking the token itself.
func (f *frontParts) imapProxy(tlsConfig *tls.Config, guard mailcore.LoginGuard,
	accounts mailcore.Accounts, secret string, log *slog.Logger) *imapproxy.Server {
	return imapproxy.New(imapproxy.Config{
		TLS:           tlsConfig,
		Guard:         guard,
		HomeOf:        f.homes.HomeOf,
		BackAddr:      f.homes.IMAPAddr,
		Breakers:      f.peers,
		ProxyIdentity: proxyIdentity,
		ProxySecret:   secret,
	}, accounts, log)
}

// proxyLogin answers a back's proxy login for its fronts, nil on a
// node of another role.
func (a *app) proxyLogin() (*imapd.ProxyLogin, error) {
	if a.cfg.Node.Role != "back" {
		return nil, nil
	}
	src, err := a.cfg.proxySources()
	if err != nil {
		return nil, err
	}
	return &imapd.ProxyLogin{Identity: proxyIdentity, Secret: a.cfg.Cluster.ProxySecret,
		Sources: src}, nil
}

// addLMTP adds the LMTP server that writes into the store.
func (a *app) addLMTP(tree *node.Tree, ln net.Listener, addr string, accounts mailAccounts, mail *store.Store, pair *backPair) {
	cfg, log := a.cfg, a.log
	tree.Add("lmtp", node.Listening(ln, func() (net.Listener, error) { return listenLMTP(addr) },
		func(ctx context.Context, ln net.Listener) error {
			srv := lmtp.NewServer(lmtp.Config{
				Hostname:        cfg.Node.Hostname,
				MaxMessageBytes: cfg.SMTP.MaxMessageBytes + 1<<20,
			}, accounts, mail, log)
			ln = pair.gate(ln, lmtpStandby)
			return node.Until(ctx, shutdownGrace, func() error { return srv.Serve(ln) },
				func(context.Context) error { return srv.Close() })
		}))
}

// backHTTP lets through only what a back serves on HTTP: its health
// and its metrics, and to its fronts the web mailbox's pages that they
// relay (its heartbeat and the fronts' mailbox routes are routed
// before it). The API and sign-in are the fronts'.
func backHTTP(h http.Handler, fromFront func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/metrics"):
			h.ServeHTTP(w, r)
		case webRelayed[r.URL.Path] && fromFront(r):
			h.ServeHTTP(w, r)
		case webRelayed[r.URL.Path]:
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			http.NotFound(w, r)
		}
	})
}
