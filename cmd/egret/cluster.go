package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/ldapmirror"
	"github.com/egretair/egret/mailcore/node"
	"github.com/egretair/egret/mailcore/queue"
)

// heartbeat answers this node's facts for GET /heartbeat; the tree
// fills in the services.
func (a *app) heartbeat(ctx context.Context, dir *directory.Store, q *queue.Queue, started time.Time) node.Heartbeat {
	hb := node.Heartbeat{
		Node:    a.cfg.nodeName(),
		Role:    a.cfg.Node.Role,
		Addr:    a.cfg.HTTP.Addr,
		Version: buildVersion(),
		Started: started,
	}
	if q != nil {
		n := q.Len()
		hb.QueueSize = &n
	}
	if a.cfg.LDAP.URL != "" {
		// The lag is two indexed reads; a database that does not
		// answer quickly leaves it out rather than stall the beat.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if lag, err := ldapmirror.Status(ctx, dir); err == nil {
			hb.MirrorLagRows = &lag.Rows
		}
	}
	return hb
}

// failEnv names the service that SIGUSR2 makes fail, for the tests and
// for operators who drill a restart. Without it the signal is left to
// its default.
const failEnv = "EGRET_TEST_FAIL_SERVICE"

// failOnSignal makes the service named by failEnv panic once at each
// SIGUSR2. It answers a function that stops listening.
func (a *app) failOnSignal(tree *node.Tree) func() {
	name := os.Getenv(failEnv)
	if name == "" {
		return func() {}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				a.log.Warn("failure drill: making a service fail", slog.String("service", name),
					slog.String("node", a.cfg.nodeName()))
				if !tree.Fail(name) {
					a.log.Warn("failure drill: no such service", slog.String("service", name))
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}

// heartbeatURL answers where this node's own heartbeat is read from the
// same machine: a wildcard listen address is reached on loopback.
func heartbeatURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "http://" + httpAddr + "/heartbeat"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/heartbeat"
}

// printCluster writes one block per node: this one first, then the
// peers in cluster.nodes. A node is shown once, however often it is
// listed: the one egret.toml of a cluster lists every node, this one
// too. A node that does not answer is shown as down, which is no
// error: status is how an operator finds that out.
func (a *app) printCluster(ctx context.Context, w io.Writer) {
	client := &http.Client{Timeout: 3 * time.Second}
	urls := append([]string{heartbeatURL(a.cfg.HTTP.Addr)}, a.cfg.clusterNodes()...)
	var beats []fetchedBeat
	fetched, shown := map[string]bool{}, map[string]bool{}
	for _, u := range urls {
		if fetched[u] {
			continue
		}
		fetched[u] = true
		hb, err := node.Fetch(ctx, client, u)
		if hb.Node != "" {
			if shown[hb.Node] {
				continue
			}
			shown[hb.Node] = true
		}
		beats = append(beats, fetchedBeat{url: u, hb: hb, err: err})
	}

	members, _ := a.cfg.clusterMembers()
	names := memberNames(members, beats)
	for _, b := range beats {
		fmt.Fprintln(w)
		if b.hb.Node == "" {
			fmt.Fprintf(w, "node %s\n  down: %v\n", b.url, b.err)
			continue
		}
		printHeartbeat(w, b.hb, b.err, names)
	}
}

// fetchedBeat is a node's heartbeat as status read it from url; hb.Node
// is "" when the node did not answer.
type fetchedBeat struct {
	url string
	hb  node.Heartbeat
	err error
}

// memberNames answers the node name of each back breaker (a member key
// such as "b1/1", or a back listed once), where a heartbeat read now
// tells it: the node that answered at the member's HTTP address in
// cluster.backs.
func memberNames(members []backNode, beats []fetchedBeat) map[string]string {
	byAddr := map[string]string{}
	for _, b := range beats {
		if b.hb.Node == "" {
			continue
		}
		if u, err := url.Parse(b.url); err == nil && u.Host != "" {
			byAddr[u.Host] = b.hb.Node
		}
		if host, _, err := net.SplitHostPort(b.hb.Addr); err == nil && host != "" &&
			!net.ParseIP(host).IsUnspecified() {
			byAddr[b.hb.Addr] = b.hb.Node
		}
	}
	names := map[string]string{}
	for _, m := range members {
		key := m.Member
		if key == "" {
			key = m.Name
		}
		if name := byAddr[m.HTTP]; name != "" {
			names[key] = name
		}
	}
	return names
}

// printHeartbeat writes one node's block. names gives the node name of
// the members its breakers watch, where status knows it (memberNames).
func printHeartbeat(w io.Writer, hb node.Heartbeat, err error, names map[string]string) {
	fmt.Fprintf(w, "node %s\n", hb.Node)
	fmt.Fprintf(w, "  role        %s\n", hb.Role)
	fmt.Fprintf(w, "  address     %s\n", hb.Addr)
	fmt.Fprintf(w, "  uptime      %s\n", (time.Duration(hb.UptimeSeconds) * time.Second).String())
	if err != nil {
		fmt.Fprintf(w, "  unwell      %v\n", err)
	}
	if hb.QueueSize != nil {
		fmt.Fprintf(w, "  queue       %d messages\n", *hb.QueueSize)
	}
	if hb.MirrorLagRows != nil {
		fmt.Fprintf(w, "  mirror lag  %d rows\n", *hb.MirrorLagRows)
	}
	fmt.Fprintf(w, "  %-16s %-11s %s\n", "service", "state", "restarts")
	for _, s := range hb.Services {
		line := fmt.Sprintf("  %-16s %-11s %d", s.Name, s.State, s.Restarts)
		if s.LastRestart != nil {
			line += fmt.Sprintf("  (last %s: %s)", s.LastRestart.Format(time.RFC3339), firstLine(s.LastCause))
		}
		fmt.Fprintln(w, line)
	}
	breakers := append([]node.BreakerStatus(nil), hb.Breakers...)
	sort.Slice(breakers, func(i, j int) bool { return breakers[i].Node < breakers[j].Node })
	if l := hb.Lease; l != nil {
		if l.Holder == "" {
			// A standby that could not read the lease row (the
			// database is down) knows neither holder nor fence.
			fmt.Fprintf(w, "  lease       %s %s, holder unknown\n", l.Back, l.State)
		} else {
			fmt.Fprintf(w, "  lease       %s %s, fence %d, holder %s\n", l.Back, l.State, l.Fence, l.Holder)
		}
	}
	for _, b := range breakers {
		fmt.Fprintln(w, breakerLine(b, names))
	}
}

// breakerLine renders a front's breaker for one back or member: its
// key, the member's node name where known, the breaker's state, and
// the lease the member's last heartbeat told. While the breaker is not
// closed that heartbeat may be old, so the lease reads as last seen. An
// active member is the lease's holder, so its lease names it too.
func breakerLine(b node.BreakerStatus, names map[string]string) string {
	name := names[b.Node]
	if l := b.Lease; name == "" && l != nil && l.State == "active" {
		name = l.Holder
	}
	line := "  breaker     " + b.Node
	if name != "" && name != b.Node {
		line += " " + name
	}
	line += " " + b.State
	if l := b.Lease; l != nil {
		seen := ""
		if b.State != "closed" {
			seen = "last seen "
		}
		line += fmt.Sprintf("  (%s%s, fence %d)", seen, l.State, l.Fence)
	}
	if b.Routed {
		line += "  routed"
	}
	return line
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
