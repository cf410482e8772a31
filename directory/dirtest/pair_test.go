package dirtest_test

import (
	"database/sql"
	"testing"

	"github.com/egretair/egret/directory/dirtest"
)

// A row written on the primary is read on the replica, and after the
// primary is killed and started again, replication goes on.
func TestPairReplicatesAcrossARestart(t *testing.T) {
	p := dirtest.StartPair(t)
	prim, err := sql.Open("mysql", p.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer prim.Close()
	rep, err := sql.Open("mysql", p.ReplicaDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()

	mustExec(t, prim, "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(50))")
	mustExec(t, prim, "INSERT INTO notes VALUES (1, 'before')")
	p.WaitCaughtUp(t)
	if got := count(t, rep); got != 1 {
		t.Fatalf("replica holds %d rows before the crash, want 1", got)
	}
	if _, err := rep.Exec("INSERT INTO notes VALUES (9, 'on replica')"); err == nil {
		t.Error("the replica took a write; it must be read-only")
	}

	p.KillPrimary(t)
	if err := prim.Ping(); err == nil {
		t.Fatal("the primary still answers after KillPrimary")
	}
	if got := count(t, rep); got != 1 {
		t.Fatalf("replica holds %d rows while the primary is down, want 1", got)
	}

	p.StartPrimary(t)
	mustExec(t, prim, "INSERT INTO notes VALUES (2, 'after')")
	p.WaitCaughtUp(t)
	if got := count(t, rep); got != 2 {
		t.Fatalf("replica holds %d rows after the restart, want 2", got)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM notes").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
