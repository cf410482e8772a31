package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/egretair/egret/mailcore/node"
)

// heartbeatServer serves a heartbeat that reports lease.
func heartbeatServer(t *testing.T, lease *node.LeaseStatus) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/heartbeat" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(node.Heartbeat{Lease: lease})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestCommandFindsTheActiveMember checks that a command run once, such
// as a purge, sends its work to the member of a back pair that holds
// the lease, whichever of the two is listed first.
func TestCommandFindsTheActiveMember(t *testing.T) {
	standby := heartbeatServer(t, &node.LeaseStatus{Back: "b1", State: "standby", Fence: 7, Holder: "b1-east"})
	active := heartbeatServer(t, &node.LeaseStatus{Back: "b1", State: "active", Fence: 7})
	cfg := Config{Cluster: ClusterConfig{Backs: "b1=127.0.0.1:1/127.0.0.1:2/" + standby +
		",b1=127.0.0.1:3/127.0.0.1:4/" + active + ",b2=127.0.0.1:5/127.0.0.1:6/127.0.0.1:7"}}
	backs, err := cfg.clusterBacks()
	if err != nil {
		t.Fatal(err)
	}
	members, err := cfg.clusterMembers()
	if err != nil {
		t.Fatal(err)
	}
	h := &homes{backs: backs, members: members}

	got, ok := h.back("b1")
	if !ok || got.HTTP != active || got.IMAP != "127.0.0.1:3" {
		t.Fatalf("b1 routed to %+v (ok %v), want the active member at %s", got, ok, active)
	}
	// A back listed once is its own member, asked nothing.
	got, ok = h.back("b2")
	if !ok || got.IMAP != "127.0.0.1:5" {
		t.Fatalf("b2 routed to %+v (ok %v)", got, ok)
	}
	// With no member active, nothing is found by asking.
	if m, ok := servingMember(context.Background(), members[:1], "b1"); ok {
		t.Fatalf("standby %+v taken as serving", m)
	}
}

// TestCommandTakesTheLeaseOfAMemberRestartingAService checks that a
// member whose heartbeat answers 503, a service restarting, is still
// found active by its lease, and that one answering no heartbeat is
// not.
func TestCommandTakesTheLeaseOfAMemberRestartingAService(t *testing.T) {
	restarting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(node.Heartbeat{Node: "b1b", Role: "back",
			Lease: &node.LeaseStatus{Back: "b1", State: "active", Fence: 3}})
	}))
	t.Cleanup(restarting.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not a heartbeat", http.StatusServiceUnavailable)
	}))
	t.Cleanup(broken.Close)
	members := []backNode{
		{Name: "b1", Member: "b1/1", HTTP: strings.TrimPrefix(broken.URL, "http://")},
		{Name: "b1", Member: "b1/2", HTTP: strings.TrimPrefix(restarting.URL, "http://")},
	}
	m, ok := servingMember(context.Background(), members, "b1")
	if !ok || m.Member != "b1/2" {
		t.Fatalf("serving member %+v (ok %v), want b1/2, active though restarting a service", m, ok)
	}
	if _, ok := servingMember(context.Background(), members[:1], "b1"); ok {
		t.Fatal("a member answering no heartbeat taken as serving")
	}
}
