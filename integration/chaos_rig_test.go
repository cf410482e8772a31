package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
)

// chaosRig is the layout the chaos test breaks: a MariaDB primary and
// its replica, back b1 as an active and a standby member over one store
// folder, and two fronts, each a process of its own on loopback.
type chaosRig struct {
	db     *dirtest.Pair
	backs  []*node
	fronts []*node
}

// startChaosRig starts the database pair, the backs and then the
// fronts, and waits until each is ready.
func startChaosRig(t *testing.T) *chaosRig {
	t.Helper()
	r := &chaosRig{db: dirtest.StartPair(t)}
	// The first node to start records its bootstrap API key in the
	// shared database; every node gets the same one.
	secret, key := randomString(t, 24), randomString(t, 24)
	common := []string{"EGRET_DATABASE_REPLICAS=" + r.db.ReplicaURL(),
		"EGRET_CLUSTER_PROXY_SECRET=" + secret, "EGRET_API_BOOTSTRAP_KEY=" + key}
	start := func(env ...string) *node {
		n := startNodeEnv(t, r.db.PrimaryURL(), append(env, common...)...)
		n.apiKey = key
		return n
	}

	// Back b1 runs as the members b1a and b1b over one data folder,
	// b1a first so that it takes the lease; the fronts list b1 twice.
	lmtp := freePorts(t, 2)
	shared := filepath.Join(t.TempDir(), "b1")
	var spec []string
	for i, name := range []string{"b1a", "b1b"} {
		b := start("EGRET_NODE_ROLE=back", "EGRET_NODE_NAME="+name, "EGRET_NODE_BACK=b1",
			"EGRET_NODE_DATA_DIR="+shared, "EGRET_LMTP_ADDR="+lmtp[i])
		r.backs = append(r.backs, b)
		spec = append(spec, fmt.Sprintf("b1=%s/%s/%s", b.imapAddr, lmtp[i], b.httpAddr))
	}

	for i := range 2 {
		r.fronts = append(r.fronts, start("EGRET_NODE_ROLE=front", fmt.Sprintf("EGRET_NODE_NAME=f%d", i+1),
			"EGRET_CLUSTER_BACKS="+strings.Join(spec, ","),
			"EGRET_CLUSTER_BREAKER_INTERVAL=300ms", "EGRET_QUEUE_RETRY_SCHEDULE=1s"))
	}
	return r
}

// activeBack answers the index of the back member whose heartbeat says
// it holds the lease, waiting up to limit for one to.
func (r *chaosRig) activeBack(t *testing.T, limit time.Duration) int {
	t.Helper()
	start := time.Now()
	for {
		var seen []string
		for i, b := range r.backs {
			l, err := leaseOf(b)
			if err == nil && l.State == "active" {
				return i
			}
			seen = append(seen, fmt.Sprintf("%+v %v", l, err))
		}
		if time.Since(start) > limit {
			t.Fatalf("no back member active after %v: %s", limit, strings.Join(seen, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queueSize answers the number of messages in the node's queue, from
// its heartbeat.
func queueSize(n *node) (int, error) {
	resp, err := (&http.Client{Timeout: clientCallTimeout}).Get("http://" + n.httpAddr + "/heartbeat")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var hb struct {
		QueueSize *int `json:"queue_size"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&hb); err != nil {
		return 0, fmt.Errorf("heartbeat of %s: %w", n.httpAddr, err)
	}
	if hb.QueueSize == nil {
		return 0, fmt.Errorf("heartbeat of %s has no queue_size", n.httpAddr)
	}
	return *hb.QueueSize, nil
}
