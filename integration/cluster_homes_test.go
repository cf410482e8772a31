package integration

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterHomesAccountsWhenTheyAreCreated imports the OA snapshot
// through a front over two backs: every account has a home at once,
// before any use, and the two backs hold within one account of each
// other. An account opened by the API afterwards goes to the back that
// holds fewer.
func TestClusterHomesAccountsWhenTheyAreCreated(t *testing.T) {
	c := startCluster(t, 2)
	snap := loadSnapshot(t, filepath.Join(repoRoot, "testdata/oa/ekp-small.json"))
	importSnapshot(t, c.front, viaAPI, snap)

	homes := homeCounts(t, c.dbURL)
	if homes[""] != 0 {
		t.Fatalf("%d accounts have no home after the import", homes[""])
	}
	b1, b2 := homes["b1"], homes["b2"]
	if b1+b2 < 2 || b1-b2 > 1 || b2-b1 > 1 {
		t.Fatalf("homes after the import: b1 %d, b2 %d; want an even split", b1, b2)
	}
	t.Logf("homes after the import: b1 %d, b2 %d", b1, b2)

	less := "b1"
	if b2 < b1 {
		less = "b2"
	}
	addr := createUser(t, c.front, "huangmin", randomString(t, 20), 0)
	if h := homeOf(t, c.dbURL, addr); h != less {
		t.Fatalf("home of an account opened by the API: %q, want %s, the less loaded back", h, less)
	}
}

// homeCounts answers the accounts homed on each node, "" for none.
func homeCounts(t *testing.T, dbURL string) map[string]int {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT COALESCE(home_node, ''), COUNT(*) FROM accounts GROUP BY home_node")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
