package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
)

// The mail clients these tests drive. scripts/test installs mutt and
// mbsync from Debian's packages; a developer without them gets a skip
// that names what is missing, and CI, where a missing client means a
// broken machine, a failure.
const (
	muttBin   = "mutt"
	mbsyncBin = "mbsync"
	tmuxBin   = "tmux"
)

// needTool answers the path of a client program, or ends the test when
// it is not installed.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed under CI; scripts/test installs it", name)
	}
	t.Skipf("%s is not installed (scripts/test installs it as root): %v", name, err)
	return ""
}

// runPython runs one of the Python clients in integration/clients with
// args, and answers its output; a non-zero exit fails the test.
func runPython(t *testing.T, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	full := append([]string{filepath.Join(repoRoot, "integration/clients", script)}, args...)
	cmd := exec.CommandContext(ctx, "python3", full...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	t.Logf("%s (%v):\n%s", script, time.Since(start).Round(time.Millisecond), out)
	return string(out)
}

// TestIMAPExtensionsWithImaplib runs clients/imap_features.py, which
// uses each IMAP extension egret announces the way Python's imaplib
// does: MOVE, UIDPLUS, NAMESPACE, SPECIAL-USE, LIST-STATUS, QUOTA, IDLE
// woken by an SMTP delivery, and Chinese folder names in modified UTF-7
// and, after ENABLE UTF8=ACCEPT, in UTF-8.
func TestIMAPExtensionsWithImaplib(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	password := randomString(t, 20)
	address := createUser(t, n, "zhangwei", password, 10<<20)
	runPython(t, "imap_features.py", n.smtpAddr, n.imapAddr, "zhangwei", password, address)
}

// createUser creates a user with a password and a quota (0 for none) in
// one API call, as the OA's integrators do, and answers the account's
// address.
func createUser(t testing.TB, n *node, login, password string, quota int64) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"login":        login,
		"display_name": login,
		"password":     password,
		"quota_bytes":  quota,
	})
	status, resp, err := n.api(http.MethodPost, "/api/v1/users", body)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /api/v1/users for %s: %d %v %s", login, status, err, resp)
	}
	var u struct {
		Account struct {
			Address string `json:"address"`
		} `json:"account"`
	}
	if err := json.Unmarshal(resp, &u); err != nil || u.Account.Address == "" {
		t.Fatalf("POST /api/v1/users for %s: no account address in %s (%v)", login, resp, err)
	}
	return u.Account.Address
}
