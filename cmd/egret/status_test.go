package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/egretair/egret/mailcore/node"
)

// beatServer serves hb as its heartbeat and answers its host:port.
func beatServer(t *testing.T, hb node.Heartbeat) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/heartbeat" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(hb)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestStatusShowsEachNodeOnceWithItsMembers renders the cluster part of
// "egret status" on a front whose cluster.nodes lists the front itself,
// a standby back member, and a back member that is down. The front is
// shown once; its breaker for the member that is down shows that
// member's lease as last seen and names it from that lease, and the
// standby is named from its own heartbeat.
func TestStatusShowsEachNodeOnceWithItsMembers(t *testing.T) {
	// The active member died: nothing listens at its address.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()

	standby := beatServer(t, node.Heartbeat{Node: "b1b", Role: "back",
		Lease: &node.LeaseStatus{Back: "b1", State: "standby", Fence: 1, Holder: "b1a"}})
	front := beatServer(t, node.Heartbeat{Node: "f1", Role: "front", Breakers: []node.BreakerStatus{
		{Node: "b1/2", State: "closed", Lease: &node.LeaseStatus{Back: "b1", State: "standby", Fence: 1, Holder: "b1a"}},
		{Node: "b1/1", State: "half-open", Lease: &node.LeaseStatus{Back: "b1", State: "active", Fence: 1, Holder: "b1a"}},
	}})
	frontPort := front[strings.LastIndex(front, ":"):]

	var out bytes.Buffer
	a := &app{stdout: &out}
	a.cfg.HTTP.Addr = front
	a.cfg.Cluster.Backs = "b1=127.0.0.1:1/127.0.0.1:2/" + deadAddr + ",b1=127.0.0.1:3/127.0.0.1:4/" + standby
	a.cfg.Cluster.Nodes = strings.Join([]string{
		"http://localhost" + frontPort + "/heartbeat", // this node, by another name
		"http://" + standby + "/heartbeat",
		"http://" + deadAddr + "/heartbeat",
		"http://" + standby + "/heartbeat", // listed twice
	}, ",")
	a.printCluster(context.Background(), &out)
	got := out.String()

	for name, want := range map[string]int{"node f1\n": 1, "node b1b\n": 1, "node http://" + deadAddr + "/heartbeat\n  down:": 1} {
		if n := strings.Count(got, name); n != want {
			t.Errorf("%q appears %d times, want %d", strings.TrimSpace(name), n, want)
		}
	}
	for _, want := range []string{
		"  breaker     b1/1 b1a half-open  (last seen active, fence 1)\n",
		"  breaker     b1/2 b1b closed  (standby, fence 1)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no line %q", strings.TrimSpace(want))
		}
	}
	if t.Failed() {
		t.Logf("status printed:\n%s", got)
	}
}

// TestBreakerLineWithoutAName renders breakers whose member status
// cannot name: a standby whose heartbeat was not read, and a back listed
// once, whose breaker bears the back's name; and one it can.
func TestBreakerLineWithoutAName(t *testing.T) {
	for _, c := range []struct {
		b    node.BreakerStatus
		want string
	}{
		{node.BreakerStatus{Node: "b1/2", State: "open",
			Lease: &node.LeaseStatus{Back: "b1", State: "standby", Fence: 3, Holder: "b1a"}},
			"  breaker     b1/2 open  (last seen standby, fence 3)"},
		{node.BreakerStatus{Node: "b2", State: "closed"}, "  breaker     b2 closed"},
	} {
		if got := breakerLine(c.b, map[string]string{"b3": "b3-east"}); got != c.want {
			t.Errorf("breaker %+v renders %q, want %q", c.b, got, c.want)
		}
	}
	if got := breakerLine(node.BreakerStatus{Node: "b3", State: "closed"}, map[string]string{"b3": "b3-east"}); got != "  breaker     b3 b3-east closed" {
		t.Errorf("a back listed once renders %q, want its node name beside it", got)
	}
}
