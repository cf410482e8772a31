package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
)

// The two ways an OA snapshot reaches egret. They share one code path
// inside and must answer the same report.
const (
	viaCLI = "cli"
	viaAPI = "api"
)

// elementTypes are the EKP element types a report counts one by one.
var elementTypes = []string{"org", "dept", "post", "person", "group"}

// TestNodeLifecycle runs a node on each database kind through what an
// airline's first day with egret looks like: the OA's full export comes
// in, comes in again unchanged, one employee gets a password, mail of
// every shape arrives for them and their mail client reads it back
// exactly as it was sent, and the operator stops the node.
func TestNodeLifecycle(t *testing.T) {
	snap := loadSnapshot(t, filepath.Join(repoRoot, "testdata/oa/ekp-full.json.gz"))
	t.Logf("fixture: %d elements, %d available people, %d left",
		len(snap.Elements), snap.Available, snap.Left)

	cases := []struct {
		dialect string
		// first and second say how each import reaches the node.
		first, second string
		// person picks whose mail is tested.
		person     string
		personLike func(ekpElement) bool
		// imapByAddress logs in with the address rather than the login.
		imapByAddress bool
	}{
		{
			dialect: "sqlite",
			first:   viaCLI, second: viaAPI,
			person: "whose address is the OA email",
			personLike: func(e ekpElement) bool {
				return e.hasOAEmail(mailDomain)
			},
		},
		{
			dialect: "mysql",
			first:   viaAPI, second: viaCLI,
			person: "whose address egret derives from a mixed-case login",
			personLike: func(e ekpElement) bool {
				return !e.hasOAEmail(mailDomain) && e.LoginName != strings.ToLower(e.LoginName)
			},
			imapByAddress: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.dialect, func(t *testing.T) {
			n := startNode(t, dirtest.URL(t, tc.dialect))

			first := importSnapshot(t, n, tc.first, snap)
			checkFirstImport(t, snap, first)
			checkAccountTotals(t, n, snap)

			second := importSnapshot(t, n, tc.second, snap)
			checkNothingChanged(t, snap, second)
			if a, b := keyPaths(first), keyPaths(second); !slices.Equal(a, b) {
				t.Errorf("the %s and %s imports answer reports of different shapes:\n%s: %v\n%s: %v",
					tc.first, tc.second, tc.first, a, tc.second, b)
			}

			p := snap.pickPerson(t, tc.person, tc.personLike)
			address := p.address(mailDomain)
			password := randomString(t, 20)
			setPassword(t, n, p, address, password)

			user := p.LoginName
			if tc.imapByAddress {
				user = address
			}
			mailRoundtrip(t, n, user, password, address)
			checkRoleAddresses(t, n)

			n.stop(t)
		})
	}
}

// importSnapshot sends the snapshot by the CLI or the API and answers
// the decoded report.
func importSnapshot(t *testing.T, n *node, via string, snap *snapshot) map[string]any {
	t.Helper()
	start := time.Now()
	var out []byte
	switch via {
	case viaCLI:
		// The CLI reads the gzipped file as the OA's export job leaves it.
		stdout, err := n.egret("", "oa", "import", snap.Path)
		if err != nil {
			t.Fatal(err)
		}
		out = []byte(stdout)
	case viaAPI:
		status, body, err := n.api(http.MethodPost, "/api/v1/oa/snapshot", snap.JSON)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusOK {
			t.Fatalf("POST /api/v1/oa/snapshot: status %d, want 200; body: %s", status, body)
		}
		out = body
	}
	t.Logf("import via %s took %v", via, time.Since(start).Round(time.Millisecond))

	var report map[string]any
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("import via %s: the report is not a JSON object: %v\n%s", via, err, out)
	}
	return report
}

// checkFirstImport checks the report of the first import into an empty
// directory: every element is accounted for, and every person got a
// mail account.
func checkFirstImport(t *testing.T, snap *snapshot, report map[string]any) {
	t.Helper()
	if v, ok := report["dry_run"].(bool); !ok || v {
		t.Errorf("report dry_run = %v, want false", report["dry_run"])
	}
	if got := number(t, report, "elements"); got != len(snap.Elements) {
		t.Errorf("report elements = %d, want %d (the fixture's elements)", got, len(snap.Elements))
	}
	for _, typ := range elementTypes {
		want := snap.ByType[typ]
		sum := 0
		for _, k := range []string{"created", "updated", "disabled", "enabled", "unchanged"} {
			sum += number(t, report, typ, k)
		}
		if sum != want {
			t.Errorf("report %s: the counts add up to %d, want %d (the fixture's %s elements)",
				typ, sum, want, typ)
		}
		// An empty directory holds nothing to update or leave alone.
		for _, k := range []string{"updated", "unchanged"} {
			if got := number(t, report, typ, k); got != 0 {
				t.Errorf("report %s.%s = %d on an empty directory, want 0", typ, k, got)
			}
		}
	}
	// A person who has left still gets an account, disabled.
	persons := snap.Available + snap.Left
	if got := number(t, report, "accounts", "created"); got != persons {
		t.Errorf("report accounts.created = %d, want %d (one per person in the fixture)", got, persons)
	}
}

// checkAccountTotals asks the API how many users have an enabled and a
// disabled account: one enabled for each available person in the
// fixture, one disabled for each person who has left.
func checkAccountTotals(t *testing.T, n *node, snap *snapshot) {
	t.Helper()
	for _, c := range []struct {
		status string
		want   int
	}{
		{"enabled", snap.Available},
		{"disabled", snap.Left},
	} {
		// Staff only: egret adds a postmaster service mailbox of its own.
		list := n.getJSON(t, "/api/v1/users?kind=staff&status="+c.status+"&per_page=1")
		if got := number(t, list, "total"); got != c.want {
			t.Errorf("GET /api/v1/users?status=%s: total %d, want %d", c.status, got, c.want)
		}
		if users, ok := list["users"].([]any); !ok || len(users) != min(1, c.want) {
			t.Errorf("GET /api/v1/users?status=%s&per_page=1: users = %v, want a list of %d",
				c.status, list["users"], min(1, c.want))
		}
	}
}

// checkNothingChanged checks the report of importing the same snapshot
// again: every count of a change is 0, and every element is unchanged.
func checkNothingChanged(t *testing.T, snap *snapshot, report map[string]any) {
	t.Helper()
	changes := map[string]bool{
		"created": true, "updated": true, "disabled": true,
		"enabled": true, "added": true, "removed": true,
	}
	seen := 0
	walk(report, "", func(path string, v any) {
		key := path[strings.LastIndex(path, ".")+1:]
		if !changes[key] {
			return
		}
		seen++
		if f, ok := v.(float64); !ok || f != 0 {
			t.Errorf("second import of the same snapshot: %s = %v, want 0", path, v)
		}
	})
	if seen < len(elementTypes) {
		t.Errorf("second import report has %d change counts, want one or more per element type:\n%v",
			seen, report)
	}
	for _, typ := range elementTypes {
		if got, want := number(t, report, typ, "unchanged"), snap.ByType[typ]; got != want {
			t.Errorf("second import: %s.unchanged = %d, want %d", typ, got, want)
		}
	}
}

// setPassword sets a person's password with the CLI, as an operator
// would pipe it in, and checks through the API that the person's
// account is enabled at the address the OA's rule gives.
func setPassword(t *testing.T, n *node, p ekpElement, address, password string) {
	t.Helper()
	t.Logf("person %s (login %s, address %s)", p.ID, p.LoginName, address)
	_, err := n.egret(password+"\n", "user", "passwd", p.LoginName, "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}

	list := n.getJSON(t, "/api/v1/users?login="+url.QueryEscape(p.LoginName))
	users, _ := list["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("GET /api/v1/users?login=%s: %d users, want 1: %v", p.LoginName, len(users), list)
	}
	u, _ := users[0].(map[string]any)
	acct, _ := u["account"].(map[string]any)
	if acct["address"] != address || acct["status"] != "enabled" {
		t.Fatalf("user %s: account %v, want address %s, status enabled", p.LoginName, acct, address)
	}
	if acct["password_changed_at"] == nil {
		t.Errorf("user %s: password_changed_at is unset after egret user passwd", p.LoginName)
	}
}

// mailRoundtrip runs the Python mail client against the node: it sends
// every fixture message over SMTP and reads each back over IMAP.
func mailRoundtrip(t *testing.T, n *node, user, password, address string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3",
		filepath.Join(repoRoot, "integration/clients/mail_roundtrip.py"),
		n.smtpAddr, n.imapAddr, user, password, address,
		filepath.Join(repoRoot, "testdata/mail"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mail_roundtrip.py: %v\n%s", err, out)
	}
	t.Logf("mail_roundtrip.py (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
}

// number answers the whole number at path in a decoded JSON object, or
// fails the test naming the path.
func number(t *testing.T, v map[string]any, path ...string) int {
	t.Helper()
	var cur any = v
	for _, key := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object in %v", strings.Join(path, "."), v)
		}
		cur, ok = obj[key]
		if !ok {
			t.Fatalf("%s: missing in %v", strings.Join(path, "."), v)
		}
	}
	f, ok := cur.(float64)
	if !ok || f != float64(int(f)) {
		t.Fatalf("%s = %v, want a whole number", strings.Join(path, "."), cur)
	}
	return int(f)
}

// walk calls fn for every value below v with its dotted path; array
// elements are named by index.
func walk(v any, path string, fn func(path string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			fn(p, child)
			walk(child, p, fn)
		}
	case []any:
		for i, child := range x {
			p := fmt.Sprintf("%s[%d]", path, i)
			fn(p, child)
			walk(child, p, fn)
		}
	}
}

// keyPaths answers the sorted dotted paths of a report's objects, with
// arrays left out, since two reports of one shape may hold different
// warnings.
func keyPaths(report map[string]any) []string {
	var paths []string
	walk(report, "", func(path string, v any) {
		if !strings.Contains(path, "[") {
			paths = append(paths, path)
		}
	})
	slices.Sort(paths)
	return paths
}

// checkRoleAddresses sends to postmaster and abuse, which every mail
// domain must accept (RFC 5321 §4.5.1, RFC 2142 §2) though the OA export
// names neither.
func checkRoleAddresses(t *testing.T, n *node) {
	t.Helper()
	for _, rcpt := range []string{"postmaster@" + mailDomain, "Abuse@" + mailDomain} {
		// Plain SMTP on purpose: net/smtp.SendMail would take the
		// STARTTLS offer and refuse the self-signed certificate.
		c, err := smtp.Dial(n.smtpAddr)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Mail("ops@example.org")
		if err == nil {
			err = c.Rcpt(rcpt)
		}
		if err == nil {
			var w io.WriteCloser
			if w, err = c.Data(); err == nil {
				io.WriteString(w, "From: <ops@example.org>\r\nSubject: role address\r\n\r\nhello\r\n")
				err = w.Close()
			}
		}
		c.Quit()
		if err != nil {
			t.Errorf("mail to %s: %v", rcpt, err)
		}
	}
}
