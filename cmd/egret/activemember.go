package main

import (
	"context"
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
		ls := memberLease(ctx, m)
		if ls == nil || ls.State != "active" {
			continue
		}
		if !found || ls.Fence > bestFence {
			best, bestFence, found = m, ls.Fence, true
		}
	}
	return best, found
}

// memberLease reads a member's lease from its heartbeat; nil when the
// member sends none. A heartbeat answers 503 while a service restarts;
// its lease is still what the member says of itself.
func memberLease(ctx context.Context, m backNode) *node.LeaseStatus {
	ctx, cancel := context.WithTimeout(ctx, servingTimeout)
	defer cancel()
	hb, err := node.Fetch(ctx, http.DefaultClient, "http://"+m.HTTP+"/heartbeat")
	if err != nil && hb.Node == "" {
		return nil
	}
	return hb.Lease
}
