package integration

import (
	"database/sql"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterPurgeRemovesTheMailOnTheBack deletes an account whose mail
// is on the second back and purges it with the front's command. While
// the back is down the purge fails and the account stays, to be purged
// later; once the back is up again the purge removes the account's
// folder on the back, then the account.
func TestClusterPurgeRemovesTheMailOnTheBack(t *testing.T) {
	c := startCluster(t, 2)
	pw := randomString(t, 20)
	addr := createUser(t, c.front, "zhoujie", pw, 0)
	setHomeIfNot(t, c.dbURL, addr, "b2")
	sendTo(t, c.front, addr, "before the purge")
	waitInbox(t, c.front, "zhoujie", pw, 1, 10*time.Second)

	accountID, personID := accountIDs(t, c.dbURL, addr)
	folder := filepath.Join(dataDir(c.backs[1]), "mail", "accounts", accountID)
	if _, err := os.Stat(folder); err != nil {
		t.Fatalf("the account's folder on the back: %v", err)
	}
	// Nobody but a front may remove mail on a back.
	req, _ := http.NewRequest(http.MethodDelete, "http://"+c.backs[1].httpAddr+"/internal/v1/mailbox/"+accountID, nil)
	req.Header.Set("Authorization", "Bearer not-the-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("DELETE on the back with a wrong secret: %v %v, want 403", resp, err)
	}
	status, resp, err := c.front.api("DELETE", "/api/v1/users/"+personID+"?retention_days=1", nil)
	if err != nil || status != 200 {
		t.Fatalf("DELETE the user: %d %v %s", status, err, resp)
	}
	expire(t, c.dbURL, accountID)

	// The back is down: the purge fails and keeps the account.
	c.backs[1].cmd.Process.Kill()
	<-c.backs[1].exited
	out, err := purge(c.front)
	if err == nil {
		t.Fatalf("purge with the back down succeeded:\n%s", out)
	}
	if !accountExists(t, c.dbURL, accountID) {
		t.Fatal("the purge dropped the account while its mail was out of reach")
	}
	t.Logf("purge with the back down: %v", err)

	c.backs[1] = relaunch(t, c.backs[1])
	out, err = purge(c.front)
	if err != nil {
		t.Fatalf("purge: %v\n%s", err, out)
	}
	if !strings.Contains(out, "purged "+accountID) {
		t.Fatalf("purge output does not name the account:\n%s", out)
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Fatalf("the account's folder on the back after the purge: %v, want it gone", err)
	}
	if accountExists(t, c.dbURL, accountID) {
		t.Fatal("the account is still in the directory after the purge")
	}
}

// setHomeIfNot records the account's home unless it is that already.
func setHomeIfNot(t *testing.T, dbURL, address, back string) {
	t.Helper()
	if homeOf(t, dbURL, address) != back {
		setHome(t, dbURL, address, back)
	}
}

// purge runs "egret account purge" with the node's settings.
func purge(n *node) (string, error) {
	cmd := exec.Command(egretBin, "account", "purge")
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// accountIDs answers the ids of the account at address and its person.
func accountIDs(t *testing.T, dbURL, address string) (account, person string) {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.QueryRow("SELECT id, person_id FROM accounts WHERE address = ?", address).Scan(&account, &person)
	if err != nil {
		t.Fatalf("ids of %s: %v", address, err)
	}
	return account, person
}

// expire ends the retention of a deleted account.
func expire(t *testing.T, dbURL, accountID string) {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec("UPDATE accounts SET purge_after = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute), accountID)
	if err != nil {
		t.Fatal(err)
	}
}

// accountExists reports whether the directory still has the account.
func accountExists(t *testing.T, dbURL, accountID string) bool {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM accounts WHERE id = ?", accountID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}
