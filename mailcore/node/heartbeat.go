package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Heartbeat is what a node answers on GET /heartbeat.
type Heartbeat struct {
	Node          string          `json:"node"`
	Role          string          `json:"role"`
	Addr          string          `json:"addr"`
	Version       string          `json:"version,omitempty"`
	Started       time.Time       `json:"started"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	Services      []ServiceStatus `json:"services"`
	// Healthy is true while every service runs.
	Healthy bool `json:"healthy"`
	// QueueSize counts the messages in the queue, on a node that has
	// one.
	QueueSize *int `json:"queue_size,omitempty"`
	// MirrorLagRows counts the change log rows the LDAP mirror has not
	// applied yet, on a node that runs the mirror.
	MirrorLagRows *int64 `json:"mirror_lag_rows,omitempty"`
	// Breakers holds a front's view of each back node.
	Breakers []BreakerStatus `json:"breakers,omitempty"`
	// Lease is a back's part in serving its store: active or standby.
	Lease *LeaseStatus `json:"lease,omitempty"`
}

// BreakerStatus is the state of a front's breaker for one back node,
// or for one member of a back that runs as an active and a standby.
type BreakerStatus struct {
	Node  string `json:"node"`
	State string `json:"state"`
	// Lease is what the member's last heartbeat said of its lease.
	Lease *LeaseStatus `json:"lease,omitempty"`
	// Routed is true for the member a front sends the back's work to.
	Routed bool `json:"routed,omitempty"`
}

// LeaseStatus is a back member's lease, as its heartbeat tells it.
type LeaseStatus struct {
	// Back is the logical back the member serves (accounts.home_node).
	Back string `json:"back"`
	// State is "active" while the member holds the lease and serves
	// the store, "standby" otherwise.
	State string `json:"state"`
	// Fence is the member's fence while active, else the holder's as
	// last read.
	Fence uint64 `json:"fence"`
	// Holder is the node holding the lease, as last read; "" unknown.
	Holder string `json:"holder,omitempty"`
}

// HeartbeatHandler serves the heartbeat that beat answers, with the
// services' states filled in from the tree. It answers 503 while a
// service is being restarted, so a peer that only reads the status
// code still sees the node as unwell.
func (t *Tree) HeartbeatHandler(beat func(context.Context) Heartbeat) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hb := beat(r.Context())
		hb.Services = t.Status()
		hb.UptimeSeconds = time.Since(hb.Started).Seconds()
		hb.Healthy = true
		for _, s := range hb.Services {
			if s.State != StateRunning {
				hb.Healthy = false
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !hb.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(hb)
	})
}

// Fetch reads the heartbeat at url, an http URL ending in /heartbeat.
// A node that answers 503 is reported with its heartbeat and an error.
func Fetch(ctx context.Context, client *http.Client, url string) (Heartbeat, error) {
	var hb Heartbeat
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return hb, fmt.Errorf("heartbeat %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return hb, fmt.Errorf("heartbeat %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return hb, fmt.Errorf("heartbeat %s: %w", url, err)
	}
	if err := json.Unmarshal(body, &hb); err != nil {
		return hb, fmt.Errorf("heartbeat %s: status %s, body not a heartbeat: %w", url, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return hb, fmt.Errorf("heartbeat %s: status %s", url, resp.Status)
	}
	return hb, nil
}
