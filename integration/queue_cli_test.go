package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
)

// TestQueueCommandsReachTheRunningNode runs `egret queue` beside a
// running node, whose queue lock makes the commands go through the
// queue's control folder, and again after the node stopped, when they
// act on the files themselves.
func TestQueueCommandsReachTheRunningNode(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))

	out, err := n.egret("", "queue", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, "\n0 messages\n") {
		t.Errorf("queue list of an empty queue:\n%s", out)
	}

	// The running node answers; a command nobody took would time out
	// after 15 seconds with another error.
	start := time.Now()
	_, err = n.egret("", "queue", "hold", "0123456789abcdef")
	if err == nil || !strings.Contains(err.Error(), "no such message") {
		t.Errorf("hold of an unknown id while serving: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the running node took %v to answer", d)
	}

	n.stop(t)
	_, err = n.egret("", "queue", "delete", "0123456789abcdef")
	if err == nil || !strings.Contains(err.Error(), "no such message") {
		t.Errorf("delete of an unknown id without a server: %v", err)
	}
	if _, err := n.egret("", "queue", "show", "../../etc"); err == nil {
		t.Error("show accepted an id that is a path")
	}
}
