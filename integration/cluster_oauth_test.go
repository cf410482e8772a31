package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
)

// TestTokensThroughAFront signs in through a front with an access token.
// The front's OpenID Connect provider is set up as a single node's is in
// TestMailClientsSignInWithAnEgretToken (its HTTP address is loopback,
// so the issuer is that address), and the token comes from it by the
// code flow. The front must announce the same capabilities as a single
// node with the same provider settings, before and after sign-in, and
// imaplib must sign in through it with OAUTHBEARER and with XOAUTH2 and
// read a message the front's SMTP took, and be refused a damaged token
// after the RFC 7628 error challenge.
func TestTokensThroughAFront(t *testing.T) {
	c := startCluster(t, 1)
	password := randomString(t, 20)
	address := createUser(t, c.front, "liuyang", password, 0)
	subject := "roster " + randomString(t, 8)
	sendTo(t, c.front, address, subject)
	waitInbox(t, c.front, "liuyang", password, 1, 10*time.Second)
	token := accessToken(t, c.front, "liuyang", password)

	single := startNode(t, dirtest.URL(t, "sqlite"))
	singlePassword := randomString(t, 20)
	createUser(t, single, "liuyang", singlePassword, 0)
	frontPre, frontPost := capabilities(t, c.front.imapAddr, "liuyang", password)
	singlePre, singlePost := capabilities(t, single.imapAddr, "liuyang", singlePassword)
	t.Logf("before sign-in: front %v, single node %v", frontPre, singlePre)
	for _, mech := range []string{"AUTH=OAUTHBEARER", "AUTH=XOAUTH2"} {
		if !slices.Contains(frontPre, mech) {
			t.Errorf("the front does not announce %s: %v", mech, frontPre)
		}
	}
	if !slices.Equal(frontPre, singlePre) {
		t.Errorf("before sign-in the front announces %v, a single node %v", frontPre, singlePre)
	}
	if !slices.Equal(frontPost, singlePost) {
		t.Errorf("after sign-in the front announces %v, a single node %v", frontPost, singlePost)
	}

	runPython(t, "oauth_read.py", c.front.imapAddr, "liuyang", token, subject)
}
