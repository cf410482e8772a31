package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/egretair/egret/mailcore/node"
)

// Commands run once, such as "egret account purge" and "egret account
// move-home" on a front, have no breakers polling the backs, so for a
// back listed twice they ask each member's heartbeat which one holds
// the lease now.

// servingTimeout bounds one heartbeat read of a command run once.
const servingTimeout = 3 * time.Second

// servingMember answers the member of the back named name, among
// members, that reports itself active with the highest fence; false
// when the back is listed once (the caller takes its only entry) or no
// member answers as active.
func servingMember(ctx context.Context, members []backNode, name string) (backNode, bool) {
	var best backNode
	var bestFence uint64
	found := false
	for _, m := range members {
		if m.Name != name || m.Member == "" {
			continue
		}
		ls, err := memberLease(ctx, m)
		if err != nil || ls == nil || ls.State != "active" {
			continue
		}
		if !found || ls.Fence > bestFence {
			best, bestFence, found = m, ls.Fence, true
		}
	}
	return best, found
}

// memberLease reads a member's lease from its heartbeat.
func memberLease(ctx context.Context, m backNode) (*node.LeaseStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, servingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.HTTP+"/heartbeat", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// A heartbeat answers 503 while a service restarts; its lease is
	// still what the member says of itself.
	var hb node.Heartbeat
	if err := json.NewDecoder(resp.Body).Decode(&hb); err != nil {
		return nil, err
	}
	return hb.Lease, nil
}
