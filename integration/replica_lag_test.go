package integration

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/egretair/egret/directory/dirtest"
)

// With a replica that trails the primary by seconds, well within
// database.max_replica_lag, a node that serves reads from it still puts
// every access decision in force at once: a login lock, a disabled
// account, a revoked API key and a rotated OIDC signing key. Mail for
// the account is still delivered.
func TestReplicaLagDoesNotDelayAccessDecisions(t *testing.T) {
	pair := dirtest.StartPair(t)
	n := startNodeEnv(t, pair.PrimaryURL(),
		"EGRET_DATABASE_REPLICAS="+pair.ReplicaURL(),
		"EGRET_DATABASE_MAX_REPLICA_LAG=2m")
	password := randomString(t, 20)
	address := createUser(t, n, "liuyang", password, 0)
	personID := userID(t, n, "liuyang")
	out, err := n.egret("", "apikey", "create", "reporting", "--scope", "directory:read")
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, out)
	}
	secret := regexp.MustCompile(`egk_\S+`).FindString(out)
	if secret == "" {
		t.Fatalf("apikey create printed no secret:\n%s", out)
	}
	pair.WaitCaughtUp(t)

	root := delayReplica(t, pair, 30)
	waitMetric(t, n, `egret_database_serves_reads{database="replica1",role="replica"} 1`, 10*time.Second)

	// Five wrong passwords lock the account; the right one is then
	// refused too.
	for range 5 {
		if _, err := inboxCount(n.imapAddr, "liuyang", "not-the-password"); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}
	if _, err := inboxCount(n.imapAddr, "liuyang", password); err == nil {
		t.Error("the right password was accepted right after the account was locked")
	}
	if out, err := n.egret("", "sso", "unlock", "liuyang"); err != nil {
		t.Fatalf("sso unlock: %v\n%s", err, out)
	}
	if _, err := inboxCount(n.imapAddr, "liuyang", password); err != nil {
		t.Errorf("login right after the unlock: %v", err)
	}

	code, body, _ := apiWithHeaders(t, n, http.MethodPost, "/api/v1/users/"+personID+"/disable", []byte(`{}`))
	if code != http.StatusOK {
		t.Fatalf("disable: %d %s", code, body)
	}
	if _, err := inboxCount(n.imapAddr, "liuyang", password); err == nil {
		t.Error("a disabled account signed in over IMAP")
	}
	var status string
	if err := root.QueryRow("SELECT status FROM egret.accounts WHERE address = ?", address).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "enabled" {
		t.Fatalf("the replica holds the account %s already; it did not trail and the test proves nothing", status)
	}
	code, body, _ = apiWithHeaders(t, n, http.MethodPost, "/api/v1/users/"+personID+"/enable", []byte(`{}`))
	if code != http.StatusOK {
		t.Fatalf("enable: %d %s", code, body)
	}

	if c := getWithAPIKey(t, n, secret); c != http.StatusOK {
		t.Fatalf("the API key before its revocation: %d", c)
	}
	if out, err := n.egret("", "apikey", "revoke", "reporting"); err != nil {
		t.Fatalf("apikey revoke: %v\n%s", err, out)
	}
	if c := getWithAPIKey(t, n, secret); c != http.StatusUnauthorized {
		t.Errorf("a revoked API key: %d, want 401", c)
	}

	out, err = n.egret("", "oidc", "rotate-key")
	if err != nil {
		t.Fatalf("oidc rotate-key: %v\n%s", err, out)
	}
	kid := regexp.MustCompile(`signing key (\S+) is active`).FindStringSubmatch(out)
	if kid == nil {
		t.Fatalf("rotate-key names no key:\n%s", out)
	}
	if kids := publishedKeyIDs(t, n); !slices.Contains(kids, kid[1]) {
		t.Errorf("the JWKS right after a rotation lacks the new key %s: %v", kid[1], kids)
	}

	sendTo(t, n, address, "while the replica trails")
	waitInbox(t, n, "liuyang", password, 1, 10*time.Second)
}

// After move-home, with a replica that trails by seconds, the front
// routes the account's mail and sign-ins to the new home at once: mail
// sent right after the move is in the mailbox read through the front
// right away, and stays there once the replica catches up.
func TestReplicaLagDoesNotDelayAMovedHome(t *testing.T) {
	pair := dirtest.StartPair(t)
	c := startReplicaCluster(t, pair, 2)
	pw := randomString(t, 20)
	addr := createUser(t, c.front, "tangmei", pw, 0)
	setHome(t, c.dbURL, addr, "b1")
	sendTo(t, c.front, addr, "before the move")
	waitInbox(t, c.front, "tangmei", pw, 1, 10*time.Second)
	pair.WaitCaughtUp(t)
	delayReplica(t, pair, 30)
	waitMetric(t, c.front, `egret_database_serves_reads{database="replica1",role="replica"} 1`, 10*time.Second)

	cmd := exec.Command(egretBin, "account", "move-home", "--remove-old", addr, "b2")
	cmd.Env = c.front.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("move-home: %v\n%s", err, out)
	}
	sendTo(t, c.front, addr, "right after the move")
	waitInbox(t, c.front, "tangmei", pw, 2, 10*time.Second)
	if h := homeOf(t, "mysql://"+pair.ReplicaDSN(), addr); h != "b1" {
		t.Fatalf("the replica holds home %q already; it did not trail and the test proves nothing", h)
	}
}

// startReplicaCluster starts n backs and a front on the pair's
// primary, each reading from its replica.
func startReplicaCluster(t *testing.T, pair *dirtest.Pair, n int) *cluster {
	t.Helper()
	c := &cluster{dbURL: pair.PrimaryURL()}
	replicas := "EGRET_DATABASE_REPLICAS=" + pair.ReplicaURL()
	lag := "EGRET_DATABASE_MAX_REPLICA_LAG=2m"
	secret := randomString(t, 24)
	lmtp := freePorts(t, n)
	var spec []string
	for i := range n {
		name := fmt.Sprintf("b%d", i+1)
		b := startNodeEnv(t, c.dbURL, "EGRET_NODE_ROLE=back", "EGRET_NODE_NAME="+name,
			"EGRET_LMTP_ADDR="+lmtp[i], "EGRET_CLUSTER_PROXY_SECRET="+secret, replicas, lag)
		c.backs = append(c.backs, b)
		spec = append(spec, fmt.Sprintf("%s=%s/%s/%s", name, b.imapAddr, lmtp[i], b.httpAddr))
	}
	c.front = startNodeEnv(t, c.dbURL, "EGRET_NODE_ROLE=front", "EGRET_NODE_NAME=f1",
		"EGRET_CLUSTER_PROXY_SECRET="+secret, "EGRET_CLUSTER_BACKS="+strings.Join(spec, ","),
		replicas, lag)
	return c
}

// delayReplica makes the pair's replica apply each event seconds after
// the primary wrote it, and answers a root connection to the replica.
func delayReplica(t *testing.T, pair *dirtest.Pair, seconds int) *sql.DB {
	t.Helper()
	replica, err := mysql.ParseDSN(pair.ReplicaDSN())
	if err != nil {
		t.Fatal(err)
	}
	root, err := sql.Open("mysql", "root@tcp("+replica.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	for _, q := range []string{"STOP SLAVE",
		"CHANGE MASTER TO MASTER_DELAY=" + strconv.Itoa(seconds), "START SLAVE"} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return root
}

// getWithAPIKey answers the status of a directory read made with key.
func getWithAPIKey(t *testing.T, n *node, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+n.httpAddr+"/api/v1/users?q=liuyang", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// publishedKeyIDs answers the key ids of the node's JWKS.
func publishedKeyIDs(t *testing.T, n *node) []string {
	t.Helper()
	resp, err := http.Get("http://" + n.httpAddr + "/oidc/keys")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	err = json.NewDecoder(strings.NewReader(readAll(resp))).Decode(&set)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.KID)
	}
	return ids
}
