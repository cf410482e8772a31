package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/egretair/egret/directory/dirtest"
)

// With the primary database killed, a node whose database.replicas names
// the replica still takes IMAP logins and SMTP mail for its accounts; an
// API change answers 503 with Retry-After and changes nothing; `egret
// status` and the metrics show the primary down. Once the primary is
// back the same change succeeds.
func TestReplicaServesWhilePrimaryIsDown(t *testing.T) {
	pair := dirtest.StartPair(t)
	n := startNodeEnv(t, pair.PrimaryURL(),
		"EGRET_DATABASE_REPLICAS="+pair.ReplicaURL(),
		"EGRET_DATABASE_MAX_REPLICA_LAG=5s")

	password := randomString(t, 20)
	address := createUser(t, n, "zhaolei", password, 0)
	personID := userID(t, n, "zhaolei")
	token := accessToken(t, n, "zhaolei", password)
	sendTo(t, n, address, "before the outage")
	waitInbox(t, n, address, password, 1, 10*time.Second)
	pair.WaitCaughtUp(t)

	pair.KillPrimary(t)
	down := time.Now()
	waitMetric(t, n, `egret_database_up{database="primary",role="primary"} 0`, 10*time.Second)
	status, err := n.egret("", "status")
	if err != nil {
		t.Fatal(err)
	}
	if !databaseLine(status, "primary", "down") || !databaseLine(status, "replica1", "serves reads") {
		t.Errorf("egret status with the primary down does not say so:\n%s", status)
	}
	t.Logf("egret status with the primary down:\n%s", status)

	// Mail and logins go on from the replica.
	sendTo(t, n, address, "during the outage")
	waitInbox(t, n, address, password, 2, 10*time.Second)
	if got, err := inboxCount(n.imapAddr, "zhaolei", password); err != nil || got != 2 {
		t.Errorf("IMAP login by name with the primary down: %d messages, %v", got, err)
	}
	t.Logf("mail delivered and read %v after the primary was killed", time.Since(down).Round(time.Millisecond))
	py := exec.Command("python3", filepath.Join(repoRoot, "integration/clients/oauth_mail.py"),
		n.imapAddr, n.submitAddr, "zhaolei", token)
	if out, err := py.CombinedOutput(); err != nil {
		t.Errorf("OAUTHBEARER and XOAUTH2 sign-in with the primary down: %v\n%s", err, out)
	}

	// A change is refused, retriably, and leaves no trace.
	patch := []byte(`{"display_name":"赵磊（机务）"}`)
	code, body, hdr := apiWithHeaders(t, n, http.MethodPatch, "/api/v1/users/"+personID, patch)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("PATCH with the primary down: %d, Retry-After %q; want 503 with Retry-After; body %s",
			code, hdr.Get("Retry-After"), body)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code != "unavailable" {
		t.Errorf("PATCH with the primary down: body %s, want error code unavailable", body)
	}
	if got := displayName(t, pair.ReplicaDSN(), personID); got != "zhaolei" {
		t.Errorf("display name on the replica after the refused change: %q, want it unchanged", got)
	}

	pair.StartPrimary(t)
	waitMetric(t, n, `egret_database_up{database="primary",role="primary"} 1`, 10*time.Second)
	code, body, _ = apiWithHeaders(t, n, http.MethodPatch, "/api/v1/users/"+personID, patch)
	if code != http.StatusOK {
		t.Fatalf("PATCH after the primary came back: %d %s", code, body)
	}
	u := n.getJSON(t, "/api/v1/users/"+personID)
	if u["display_name"] != "赵磊（机务）" {
		t.Errorf("GET after the change: display_name %v", u["display_name"])
	}
	status, err = n.egret("", "status")
	if err != nil || !databaseLine(status, "primary", "serves writes") {
		t.Errorf("egret status after the primary came back:\n%s%v", status, err)
	}
}

// accessToken signs in to the node's OpenID Connect provider with the
// code flow and PKCE, as a mail client would, and answers the access
// token.
func accessToken(t *testing.T, n *node, login, password string) string {
	t.Helper()
	const redirect = "http://127.0.0.1:9/mail/callback"
	if _, err := n.egret("", "oidc", "client", "add", "--id", "mailapp", "--public",
		"--redirect-uri", redirect); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, "http://"+n.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	oc := &oauth2.Config{ClientID: "mailapp", RedirectURL: redirect, Endpoint: p.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "email", "mail"}}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	resp, err := browser.Get(oc.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(resp)
	form := url.Values{"username": {login}, "password": {password}}
	for _, name := range []string{"id", "csrf"} {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("login page has no %s field:\n%s", name, page)
		}
		form.Set(name, html.UnescapeString(m[1]))
	}
	resp, err = browser.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in: %s, redirect %v", resp.Status, loc)
	}
	tok, err := oc.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// readAll answers a response's body and closes it.
func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			return b.String()
		}
	}
}

// userID answers the person id of the user with this login.
func userID(t *testing.T, n *node, login string) string {
	t.Helper()
	v := n.getJSON(t, "/api/v1/users?q="+login)
	items, _ := v["users"].([]any)
	for _, it := range items {
		if m, _ := it.(map[string]any); m != nil && m["login"] == login {
			return m["id"].(string)
		}
	}
	t.Fatalf("no user %s in %v", login, v)
	return ""
}

// apiWithHeaders is node.api that also answers the response headers.
func apiWithHeaders(t *testing.T, n *node, method, path string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.httpAddr+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.apiKey)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, []byte(readAll(resp)), resp.Header
}

// waitMetric waits until the node's /metrics holds line.
func waitMetric(t *testing.T, n *node, line string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get("http://" + n.httpAddr + "/metrics")
		if err == nil && strings.Contains(readAll(resp), line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics did not show %q within %v", line, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// databaseLine reports whether egret status shows database name with
// words on its line.
func databaseLine(status, name, words string) bool {
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == "database" && f[1] == name && strings.Contains(l, words) {
			return true
		}
	}
	return false
}

// displayName reads a person's display name straight from a server.
func displayName(t *testing.T, dsn, personID string) string {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRow("SELECT display_name FROM people WHERE id = ?", personID).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
