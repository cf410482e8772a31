package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

// The client tests again, through a front: the same scripts and the
// same outcomes as on one node, with the IMAP session relayed by the
// front's proxy to the account's back. One back is enough, since every
// account's home is then that back.

// TestIMAPExtensionsWithImaplibThroughAFront runs clients/imap_features.py
// against the front of a cluster; the IDLE check's mail goes in through
// the front's queue and over LMTP to the back.
func TestIMAPExtensionsWithImaplibThroughAFront(t *testing.T) {
	c := startCluster(t, 1)
	password := randomString(t, 20)
	address := createUser(t, c.front, "zhangwei", password, 10<<20)
	runPython(t, "imap_features.py", c.front.smtpAddr, c.front.imapAddr, "zhangwei", password, address)
}

// TestMuttThroughAFront runs the mutt check against the front of a
// cluster: STARTTLS ends on the front with its own certificate, and the
// session after LOGIN is the back's.
func TestMuttThroughAFront(t *testing.T) {
	c := startCluster(t, 1)
	muttListsAndMoves(t, c.front)
}

// TestFrontCapabilitiesMatchTheBack compares what a client is told
// through the front with what the back itself tells: before sign-in the
// front answers from a list of its own, after it the back's list is
// passed on. The lists differ only where the front has a reason to.
func TestFrontCapabilitiesMatchTheBack(t *testing.T) {
	c := startCluster(t, 1)
	password := randomString(t, 20)
	createUser(t, c.front, "wangfang", password, 0)

	frontPre, frontPost := capabilities(t, c.front.imapAddr, "wangfang", password)
	backPre, backPost := capabilities(t, c.backs[0].imapAddr, "wangfang", password)
	t.Logf("before sign-in: front %v, back %v", frontPre, backPre)
	t.Logf("after sign-in: front %v, back %v", frontPost, backPost)

	// Tokens are checked where the OpenID Connect provider runs: on the
	// front (its HTTP address is loopback, so it has one), never on a
	// back. Before sign-in the front offers OAUTHBEARER and XOAUTH2
	// besides the back's list, as a single node does
	// (TestTokensThroughAFront).
	wantPre := append(slices.Clone(backPre), "AUTH=OAUTHBEARER", "AUTH=XOAUTH2")
	slices.Sort(wantPre)
	if !slices.Equal(frontPre, wantPre) {
		t.Errorf("before sign-in the front announces %v, want the back's %v and the token mechanisms",
			frontPre, backPre)
	}
	if !slices.Equal(frontPost, backPost) {
		t.Errorf("after sign-in the front announces %v, the back %v", frontPost, backPost)
	}
}

// capabilities answers the capability lists of a plain connection to
// addr before and after LOGIN, sorted.
func capabilities(t *testing.T, addr, user, password string) (before, after []string) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list := func() []string {
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatalf("CAPABILITY on %s: %v", addr, err)
		}
		var out []string
		for k := range caps {
			out = append(out, strings.ToUpper(string(k)))
		}
		slices.Sort(out)
		return out
	}
	before = list()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("LOGIN on %s: %v", addr, err)
	}
	after = list()
	c.Logout().Wait()
	return before, after
}
