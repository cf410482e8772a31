package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"github.com/go-sql-driver/mysql"

	"github.com/egretair/egret/directory/dirtest"
)

// TestBackupRestoreWhileMailArrives backs a node up with scripts/backup
// while one sender keeps delivering and one mail client keeps moving
// messages and changing their flags, restores the backup with
// scripts/restore into a new database and an empty data folder, starts
// a second node there, and compares the two with scripts/backup-check:
// the directory row for row, and every message that was acknowledged
// before the backup began present with its UID, flags and bytes, none
// twice.
func TestBackupRestoreWhileMailArrives(t *testing.T) {
	needTool(t, "mariadb-dump")
	needTool(t, "mariadb")
	needTool(t, "python3")

	origURL := dirtest.URL(t, "mysql")
	orig := startNode(t, origURL)
	snap := loadSnapshot(t, filepath.Join(repoRoot, "testdata/oa/ekp-small.json"))
	importSnapshot(t, orig, viaAPI, snap)
	users := backupUsers(t, orig, snap)
	alias := "backup-alias@" + mailDomain
	id, _ := orig.getJSON(t, "/api/v1/users/"+users[0].login)["id"].(string)
	status, body, err := orig.api(http.MethodPost, "/api/v1/users/"+id+"/aliases",
		[]byte(`{"address":"`+alias+`"}`))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST aliases: %d %v %s", status, err, body)
	}

	// Before the backup: every fixture, the large one included, to the
	// first user; a batch to each; flags and a folder set over IMAP.
	for _, m := range mailFixtures(t) {
		sendRaw(t, orig, users[0].address, m)
	}
	for i := range 30 {
		for _, u := range users[1:] {
			if err := deliverToken(orig.smtpAddr, u.address, fmt.Sprintf("before-%s-%d", u.login, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitQueueEmpty(t, orig)
	markMessages(t, orig, users[0])

	// The sender and the mover run through the backup.
	sender := startSender(orig, users[:2])
	mover := startMover(t, orig, users[2])
	for sender.count() < 20 {
		time.Sleep(20 * time.Millisecond)
	}
	began := time.Now()
	backup := filepath.Join(t.TempDir(), "backup")
	runScriptEnv(t, []string{"EGRET_DATABASE_URL=" + origURL}, "bash",
		filepath.Join(repoRoot, "scripts/backup"), "--data-dir", dataDir(orig), "--dest", backup)
	ended := time.Now()
	time.Sleep(300 * time.Millisecond)
	moves, err := mover.stop()
	if err != nil {
		t.Fatalf("mover: %v", err)
	}
	ackedBefore, sentAll := sender.stop(began)
	manifest := readFile(t, filepath.Join(backup, "MANIFEST"))
	before := 0
	for _, l := range ackedBefore {
		before += len(l)
	}
	t.Logf("backup took %v; %d messages acknowledged by the sender before it, %d in all; "+
		"%d moves and flag changes; manifest:\n%s",
		ended.Sub(began).Round(time.Millisecond), before, sentAll, moves, manifest)
	if moves == 0 {
		t.Fatal("the mover changed nothing during the backup")
	}
	if !strings.Contains(manifest, "\nreplica_of: none\n") || !strings.Contains(manifest, "\nreplica_check: not a replica\n") {
		t.Errorf("the MANIFEST of a primary's backup does not say it is no replica:\n%s", manifest)
	}

	// A damaged backup and a target that is not empty are refused.
	damaged := filepath.Join(t.TempDir(), "damaged")
	runScript(t, "cp", "-a", backup, damaged)
	if err := os.WriteFile(filepath.Join(damaged, "messages.tsv"), []byte("x\t1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	restoredURL := "mysql://" + dirtest.NewMySQLDatabase(t)
	restoredFile := urlFile(t, restoredURL)
	restoredDir := filepath.Join(t.TempDir(), "data")
	out := failScript(t, "bash", filepath.Join(repoRoot, "scripts/restore"), "--backup", damaged,
		"--database-file", restoredFile, "--data-dir", restoredDir, "--egret", egretBin)
	if !strings.Contains(out, "does not match its SHA256SUMS") {
		t.Errorf("restore of a damaged backup: want a checksum refusal, got:\n%s", out)
	}
	restoreArgs := []string{filepath.Join(repoRoot, "scripts/restore"), "--backup", backup,
		"--database-file", restoredFile, "--data-dir", restoredDir, "--egret", egretBin, "--with-queue"}
	runScript(t, "bash", restoreArgs...)
	out = failScript(t, "bash", restoreArgs...)
	if !strings.Contains(out, "not an empty node") {
		t.Errorf("restore into a restored node: want a refusal, got:\n%s", out)
	}

	// The restored node, with the original's bootstrap key, so that
	// nothing in the directory differs but what the backup missed.
	restored := startNodeEnv(t, restoredURL, "EGRET_NODE_DATA_DIR="+restoredDir,
		"EGRET_API_BOOTSTRAP_KEY="+orig.apiKey)
	waitQueueEmpty(t, restored)
	waitQueueEmpty(t, orig)

	logins := filepath.Join(t.TempDir(), "logins")
	var lines []string
	for _, u := range users[:2] {
		lines = append(lines, u.login+"\t"+u.password+"\n")
	}
	if err := os.WriteFile(logins, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	started := regexp.MustCompile(`(?m)^started: (\S+)$`).FindStringSubmatch(manifest)
	if started == nil {
		t.Fatalf("MANIFEST has no started line:\n%s", manifest)
	}
	runScript(t, "python3", filepath.Join(repoRoot, "scripts/backup-check"),
		"--orig-db-file", urlFile(t, origURL), "--restored-db-file", restoredFile,
		"--orig-imap", orig.imapAddr, "--restored-imap", restored.imapAddr,
		"--logins", logins, "--before", started[1])

	// Every message the sender had acknowledged before the backup
	// began is there once; none is there twice.
	for _, u := range users[:2] {
		got, err := readInbox(restored.imapAddr, u.login, u.password, true)
		if err != nil {
			t.Fatal(err)
		}
		for token, n := range got {
			if n != 1 {
				t.Errorf("%s: token %s restored %d times", u.login, token, n)
			}
		}
		for _, token := range ackedBefore[u.address] {
			if got[token] != 1 {
				t.Errorf("%s: token %s, acknowledged before the backup, restored %d times",
					u.login, token, got[token])
			}
		}
	}

	// The mover's account: every message once, whichever mailbox and
	// flags the backup caught it with.
	want := accountBodies(t, orig, users[2])
	got := accountBodies(t, restored, users[2])
	for sum, n := range got {
		if n != 1 || want[sum] != 1 {
			t.Errorf("%s: a message restored %d times, %d in the original", users[2].login, n, want[sum])
		}
	}
	for sum := range want {
		if got[sum] == 0 {
			t.Errorf("%s: a message of the original is not restored", users[2].login)
		}
	}
	t.Logf("%s: %d messages, moved and flagged during the backup, compared by body",
		users[2].login, len(got))
}

// TestBackupRefusesAStaleReplica backs up the replica of a private
// MariaDB pair: while it follows its primary the backup is taken and its
// MANIFEST records the replica's state; with its SQL thread stopped the
// backup is refused, naming the thread, and leaves no folder behind;
// --allow-stale takes it anyway and says so in the MANIFEST.
func TestBackupRefusesAStaleReplica(t *testing.T) {
	needTool(t, "mariadb-dump")
	needTool(t, "mariadb")

	pair := dirtest.StartPair(t)
	prim, err := sql.Open("mysql", pair.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer prim.Close()
	for _, q := range []string{"CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(50))",
		"INSERT INTO notes VALUES (1, 'before')"} {
		if _, err := prim.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	pair.WaitCaughtUp(t)
	dataDir := t.TempDir()
	backup := func(dbURL string, args ...string) (string, string, error) {
		dest := filepath.Join(t.TempDir(), "backup")
		out, err := scriptEnv([]string{"EGRET_DATABASE_URL=" + dbURL}, "bash",
			append([]string{filepath.Join(repoRoot, "scripts/backup"),
				"--data-dir", dataDir, "--dest", dest}, args...)...)
		return dest, out, err
	}

	dest, out, err := backup(pair.ReplicaURL())
	if err != nil {
		t.Fatalf("backup of a replica that follows its primary: %v\n%s", err, out)
	}
	manifest := readFile(t, filepath.Join(dest, "MANIFEST"))
	for _, want := range []string{"replica_of: " + pair.PrimaryAddr(), "replica_io_running: Yes",
		"replica_sql_running: Yes", "replica_seconds_behind: 0", "replica_check: passed",
		"gtid_slave_pos: none (binary log off)"} {
		if !strings.Contains(manifest, "\n"+want) {
			t.Errorf("the MANIFEST lacks %q:\n%s", want, manifest)
		}
	}

	// A backup user without SLAVE MONITOR cannot read the state of the
	// replica, which is read_only: it is refused too.
	primRoot, err := sql.Open("mysql", "root@tcp("+pair.PrimaryAddr()+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer primRoot.Close()
	for _, q := range []string{"CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY 'backup-secret'",
		"GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, RELOAD, BINLOG MONITOR ON *.* TO 'backup'@'127.0.0.1'"} {
		if _, err := primRoot.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	pair.WaitCaughtUp(t)
	replica, err := mysql.ParseDSN(pair.ReplicaDSN())
	if err != nil {
		t.Fatal(err)
	}
	_, out, err = backup("mysql://backup:backup-secret@tcp(" + replica.Addr + ")/" + dirtest.PairDatabase)
	if err == nil || !strings.Contains(out, "grant the backup user SLAVE MONITOR") {
		t.Errorf("backup of a replica whose state cannot be read: %v; want a refusal naming the grant:\n%s", err, out)
	}
	t.Logf("refused:\n%s", out)

	// The replica's SQL thread stops: what it dumps no longer moves.
	root, err := sql.Open("mysql", "root@tcp("+replica.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatalf("STOP SLAVE SQL_THREAD: %v", err)
	}
	if _, err := prim.Exec("INSERT INTO notes VALUES (2, 'after')"); err != nil {
		t.Fatal(err)
	}

	dest, out, err = backup(pair.ReplicaURL())
	if err == nil {
		t.Fatalf("backup of a replica whose SQL thread is stopped was taken:\n%s", out)
	}
	if !strings.Contains(out, "SQL thread is not running") || !strings.Contains(out, "--allow-stale") {
		t.Errorf("the refusal does not say why or how to override:\n%s", out)
	}
	t.Logf("refused:\n%s", out)
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s behind (%v)", dest, err)
	}

	dest, out, err = backup(pair.ReplicaURL(), "--allow-stale")
	if err != nil {
		t.Fatalf("backup with --allow-stale: %v\n%s", err, out)
	}
	manifest = readFile(t, filepath.Join(dest, "MANIFEST"))
	if !strings.Contains(manifest, "\nreplica_sql_running: No\n") ||
		!strings.Contains(manifest, "\nreplica_check: stale, taken with --allow-stale: its SQL thread is not running") {
		t.Errorf("the MANIFEST of a stale backup does not say so:\n%s", manifest)
	}
}

// TestBackupRecordsTheDumpsGTIDPosition backs up the primary of a
// private MariaDB pair, whose binary log is on, while a writer keeps
// inserting rows one transaction at a time. The MANIFEST must record the
// GTID position the dump itself carries, from which a replica seeded
// with the dump starts: every row written at or before that position is
// in the dump, and every row written after it, during the backup
// included, is not, so such a replica neither skips nor repeats a
// write.
func TestBackupRecordsTheDumpsGTIDPosition(t *testing.T) {
	needTool(t, "mariadb-dump")
	needTool(t, "mariadb")

	pair := dirtest.StartPair(t)
	primary, err := mysql.ParseDSN(pair.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	root, err := sql.Open("mysql", "root@tcp("+primary.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	// The backup user as docs/runbook.md makes it.
	for _, q := range []string{"CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY 'backup-secret'",
		"GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, RELOAD, BINLOG MONITOR ON *.* TO 'backup'@'127.0.0.1'",
		"GRANT SLAVE MONITOR ON *.* TO 'backup'@'127.0.0.1'"} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	prim, err := sql.Open("mysql", pair.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer prim.Close()
	// Enough rows that the dump takes a while.
	const filled = 200000
	pad := strings.Repeat("x", 200)
	for _, q := range []string{"CREATE TABLE writes (id INT PRIMARY KEY, pad VARCHAR(200))",
		fmt.Sprintf("INSERT INTO writes SELECT seq, '%s' FROM seq_1_to_%d", pad, filled)} {
		if _, err := prim.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// The writer: one row a transaction, on one connection, each row's
	// GTID read back after its commit.
	type write struct {
		id, seq int
		at      time.Time
	}
	var (
		mu     sync.Mutex
		writes []write
		werr   error
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	conn, err := prim.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for id := filled + 1; ; id++ {
			select {
			case <-done:
				return
			default:
			}
			var gtid string
			_, err := conn.ExecContext(ctx, "INSERT INTO writes VALUES (?, 'w')", id)
			if err == nil {
				err = conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid)
			}
			var seq int
			if err == nil {
				_, err = fmt.Sscanf(gtid, "0-1-%d", &seq)
			}
			mu.Lock()
			if err != nil {
				werr = fmt.Errorf("row %d (GTID %q): %w", id, gtid, err)
				mu.Unlock()
				return
			}
			writes = append(writes, write{id, seq, time.Now()})
			mu.Unlock()
		}
	}()
	// waitWrites waits until the writer has written n more rows, or
	// stopped.
	waitWrites := func(n int) {
		mu.Lock()
		want := len(writes) + n
		mu.Unlock()
		for {
			mu.Lock()
			enough := len(writes) >= want || werr != nil
			mu.Unlock()
			if enough {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitWrites(20)

	backup := filepath.Join(t.TempDir(), "backup")
	runScriptEnv(t, []string{"EGRET_DATABASE_URL=mysql://backup:backup-secret@tcp(" + primary.Addr + ")/" +
		dirtest.PairDatabase}, "bash", filepath.Join(repoRoot, "scripts/backup"),
		"--data-dir", t.TempDir(), "--dest", backup)
	ended := time.Now()
	waitWrites(20)
	close(done)
	wg.Wait()
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}

	manifest := readFile(t, filepath.Join(backup, "MANIFEST"))
	m := regexp.MustCompile(`(?m)^gtid_slave_pos: '(.*)'$`).FindStringSubmatch(manifest)
	if m == nil {
		t.Fatalf("the MANIFEST records no gtid_slave_pos of a primary with the binary log on:\n%s", manifest)
	}
	zr, err := gzip.NewReader(strings.NewReader(readFile(t, filepath.Join(backup, "database.sql.gz"))))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	dump := buf.String()
	d := regexp.MustCompile(`(?m)^-- SET GLOBAL gtid_slave_pos='(.*)';$`).FindStringSubmatch(dump)
	if d == nil {
		t.Fatal("the dump carries no gtid_slave_pos line")
	}
	if m[1] != d[1] {
		t.Errorf("the MANIFEST records gtid_slave_pos '%s'; the dump carries '%s'", m[1], d[1])
	}
	var pos int
	if _, err := fmt.Sscanf(m[1], "0-1-%d", &pos); err != nil {
		t.Fatalf("MANIFEST gtid_slave_pos '%s': %v", m[1], err)
	}
	if n := strings.Count(dump, "'"+pad+"'"); n != filled {
		t.Errorf("the dump holds %d of the %d rows written before the backup", n, filled)
	}

	// Each row is in the dump exactly when its GTID is at or before the
	// MANIFEST's position.
	inDump := map[int]bool{}
	for _, r := range regexp.MustCompile(`\((\d+),'w'\)`).FindAllStringSubmatch(dump, -1) {
		var id int
		fmt.Sscan(r[1], &id)
		inDump[id] = true
	}
	before, after, afterDuringBackup, wrong := 0, 0, 0, 0
	for _, w := range writes {
		if w.seq <= pos {
			before++
		} else {
			after++
			if w.at.Before(ended) {
				afterDuringBackup++
			}
		}
		if inDump[w.id] != (w.seq <= pos) {
			if wrong++; wrong <= 10 {
				t.Errorf("row %d, GTID 0-1-%d: in the dump %v, but the MANIFEST's position is 0-1-%d",
					w.id, w.seq, inDump[w.id], pos)
			}
		}
	}
	t.Logf("position 0-1-%d; %d rows written up to it, %d after it (%d of those before the backup ended)",
		pos, before, after, afterDuringBackup)
	if before == 0 || afterDuringBackup == 0 {
		t.Fatalf("the writer did not write both before the dump and during the backup after it "+
			"(%d rows up to the position, %d after it while the backup ran)", before, afterDuringBackup)
	}
}

// TestBackupWithAPasswordOfOddCharacters backs up, restores and checks
// a node whose database user's password holds "#", a backslash, both
// quotes, "@", ":", "&", "/" and a space, given to the scripts in
// EGRET_DATABASE_URL and in files: each step works, and no program the
// scripts run has the password on its command line. A URL with a
// password given on the command line is refused.
func TestBackupWithAPasswordOfOddCharacters(t *testing.T) {
	needTool(t, "mariadb-dump")
	needTool(t, "mariadb")
	needTool(t, "python3")

	// A user and two databases of this test's own on the test server.
	server := dirtest.MySQLServerDSN(t)
	cfg, err := mysql.ParseDSN(server)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", server)
	if err != nil {
		t.Fatal(err)
	}
	name := "egret_t_s_" + hex.EncodeToString([]byte(randomString(t, 6)))
	origDB, restoredDB := name+"_o", name+"_r"
	password := `p#1\2'3"4@5:6&7/8 9`
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password)
	hosts := []string{"127.0.0.1", "localhost"}
	t.Cleanup(func() {
		defer admin.Close()
		var drops []string
		for _, h := range hosts {
			drops = append(drops, "DROP USER IF EXISTS '"+name+"'@'"+h+"'")
		}
		drops = append(drops, "DROP DATABASE IF EXISTS "+origDB, "DROP DATABASE IF EXISTS "+restoredDB)
		for _, q := range drops {
			if _, err := admin.Exec(q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	stmts := []string{
		"CREATE DATABASE " + origDB + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
		"CREATE DATABASE " + restoredDB + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
	}
	for _, h := range hosts {
		stmts = append(stmts, "CREATE USER '"+name+"'@'"+h+"' IDENTIFIED BY '"+quoted+"'")
		for _, db := range []string{origDB, restoredDB} {
			stmts = append(stmts, "GRANT ALL PRIVILEGES ON `"+strings.ReplaceAll(db, "_", `\_`)+
				"`.* TO '"+name+"'@'"+h+"'")
		}
	}
	for _, q := range stmts {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dbURL := func(db string) string {
		return "mysql://" + name + ":" + password + "@tcp(" + cfg.Addr + ")/" + db
	}
	origURL, restoredURL := dbURL(origDB), dbURL(restoredDB)

	orig := startNode(t, origURL)
	mailPassword := randomString(t, 20)
	address := createUser(t, orig, "odd", mailPassword, 0)
	sendTo(t, orig, address, "before the backup")
	waitQueueEmpty(t, orig)

	// Every database client and egret, run through a wrapper that notes
	// its command line.
	bin := t.TempDir()
	argv := filepath.Join(t.TempDir(), "argv")
	wrappers := map[string]string{"egret": egretBin}
	for _, tool := range []string{"mariadb", "mariadb-dump", "mysql", "mysqldump"} {
		if path, err := exec.LookPath(tool); err == nil {
			wrappers[tool] = path
		}
	}
	for tool, path := range wrappers {
		body := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"%s $*\" >>'%s'\nexec '%s' \"$@\"\n", tool, argv, path)
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")

	backup := filepath.Join(t.TempDir(), "backup")
	runScriptEnv(t, []string{path, "EGRET_DATABASE_URL=" + origURL}, "bash",
		filepath.Join(repoRoot, "scripts/backup"), "--data-dir", dataDir(orig), "--dest", backup)
	manifest := readFile(t, filepath.Join(backup, "MANIFEST"))
	for _, want := range []string{"database: " + origDB, "gtid_slave_pos: none (binary log off)",
		"accounts: 1", "messages: 1"} {
		if !strings.Contains(manifest, "\n"+want+"\n") {
			t.Errorf("the MANIFEST lacks %q:\n%s", want, manifest)
		}
	}

	// A password on the command line is refused by each script.
	restoredDir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"bash", "scripts/backup", "--database", origURL, "--data-dir", dataDir(orig),
			"--dest", filepath.Join(t.TempDir(), "refused")},
		{"bash", "scripts/restore", "--backup", backup, "--database", restoredURL,
			"--data-dir", restoredDir, "--egret", egretBin},
		{"python3", "scripts/backup-check", "--orig-db", origURL, "--restored-db-file", urlFile(t, restoredURL),
			"--orig-imap", orig.imapAddr, "--restored-imap", orig.imapAddr, "--logins", os.DevNull},
	} {
		out := failScript(t, args[0], args[1:]...)
		if !strings.Contains(out, "holds a password") {
			t.Errorf("%s with a password on its command line: want a refusal, got:\n%s", args[1], out)
		}
	}
	if _, err := os.Stat(restoredDir); !os.IsNotExist(err) {
		t.Errorf("a refused restore touched %s (%v)", restoredDir, err)
	}

	runScriptEnv(t, []string{path}, "bash", filepath.Join(repoRoot, "scripts/restore"),
		"--backup", backup, "--database-file", urlFile(t, restoredURL), "--data-dir", restoredDir,
		"--egret", filepath.Join(bin, "egret"))
	restored := startNodeEnv(t, restoredURL, "EGRET_NODE_DATA_DIR="+restoredDir,
		"EGRET_API_BOOTSTRAP_KEY="+orig.apiKey)
	waitInbox(t, restored, "odd", mailPassword, 1, 30*time.Second)

	logins := filepath.Join(t.TempDir(), "logins")
	if err := os.WriteFile(logins, []byte("odd\t"+mailPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := regexp.MustCompile(`(?m)^started: (\S+)$`).FindStringSubmatch(manifest)
	if started == nil {
		t.Fatalf("MANIFEST has no started line:\n%s", manifest)
	}
	runScriptEnv(t, []string{path}, "python3", filepath.Join(repoRoot, "scripts/backup-check"),
		"--orig-db-file", urlFile(t, origURL), "--restored-db-file", urlFile(t, restoredURL),
		"--orig-imap", orig.imapAddr, "--restored-imap", restored.imapAddr,
		"--logins", logins, "--before", started[1])

	// What the process list showed of the programs the scripts ran.
	ran := readFile(t, argv)
	for _, tool := range []string{"mariadb ", "mariadb-dump ", "egret "} {
		if !strings.Contains(ran, "\n"+tool) && !strings.HasPrefix(ran, tool) {
			t.Errorf("the scripts ran no %s through its wrapper:\n%s", tool, ran)
		}
	}
	for _, secret := range []string{password, quoted} {
		if strings.Contains(ran, secret) {
			t.Errorf("a command line the scripts ran holds the password:\n%s", ran)
		}
	}
	t.Logf("%d programs run by the scripts, none with the password on its command line",
		strings.Count(ran, "\n"))
}

// backupUsers gives the first three available people of the snapshot
// passwords and answers them.
func backupUsers(t *testing.T, n *node, snap *snapshot) []loadUser {
	t.Helper()
	owners := map[string]int{}
	for _, e := range snap.Elements {
		owners[e.address(mailDomain)]++
	}
	var users []loadUser
	for _, e := range snap.Elements {
		if e.Type != "person" || !e.IsAvailable || owners[e.address(mailDomain)] != 1 {
			continue
		}
		u := loadUser{address: e.address(mailDomain), login: e.LoginName, password: randomString(t, 20)}
		if _, err := n.egret(u.password+"\n", "user", "passwd", u.login, "--password-stdin"); err != nil {
			t.Fatal(err)
		}
		if users = append(users, u); len(users) == 3 {
			return users
		}
	}
	t.Fatal("the snapshot has fewer than 3 usable people")
	return nil
}

// mailFixtures answers every message in testdata/mail, unpacked.
func mailFixtures(t *testing.T) [][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "testdata/mail/*.eml*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in testdata/mail: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b := []byte(readFile(t, p))
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(zr); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			b = buf.Bytes()
		}
		out = append(out, b)
	}
	return out
}

// sendRaw sends one message over SMTP and requires 250.
func sendRaw(t *testing.T, n *node, to string, msg []byte) {
	t.Helper()
	c, err := smtp.Dial(n.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("ops@remote.example", []string{to}, bytes.NewReader(msg)); err != nil {
		t.Fatalf("send to %s: %v", to, err)
	}
	c.Quit()
}

// deliverToken sends a message marked with token as sendToken does, and
// answers nil once DATA got 250, whatever QUIT then meets.
func deliverToken(addr, to, token string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := fmt.Sprintf("From: <load@remote.example>\r\nTo: <%s>\r\nSubject: backup\r\n"+
		"%s: %s\r\n\r\nDuring the backup.\r\n", to, tokenHeader, token)
	if err := c.SendMail("load@remote.example", []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	c.Quit()
	return nil
}

// waitQueueEmpty waits until the node's queue holds nothing.
func waitQueueEmpty(t *testing.T, n *node) {
	t.Helper()
	start := time.Now()
	for {
		out, err := n.egret("", "queue", "list")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(out, "\n0 messages\n") {
			return
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("queue not drained after 2 minutes:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// markMessages leaves the state a mail client leaves: flags, a
// keyword, a message moved into a folder with a Chinese name, and one
// expunged, so UIDs have a gap.
func markMessages(t *testing.T, n *node, u loadUser) {
	t.Helper()
	c := frontSession(t, n, u.login, u.password)
	defer func() { c.Logout().Wait() }()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	stores := []struct {
		uid   imap.UID
		flags []imap.Flag
	}{
		{1, []imap.Flag{imap.FlagSeen}},
		{2, []imap.Flag{imap.FlagFlagged, imap.FlagAnswered, "$Forwarded"}},
		{3, []imap.Flag{imap.FlagSeen, "backup-keyword"}},
		{5, []imap.Flag{imap.FlagDeleted}},
	}
	for _, s := range stores {
		st := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: s.flags, Silent: true}
		if err := c.Store(imap.UIDSetNum(s.uid), st, nil).Close(); err != nil {
			t.Fatalf("UID STORE %d %v: %v", s.uid, s.flags, err)
		}
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatalf("EXPUNGE: %v", err)
	}
	if err := c.Create("归档", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	if _, err := c.Move(imap.UIDSetNum(4), "归档").Wait(); err != nil {
		t.Fatalf("UID MOVE: %v", err)
	}
}

// sender delivers token messages to its users until stopped, and
// records when each was acknowledged.
type sender struct {
	mu    sync.Mutex
	acked map[string][]ackedToken // by address
	total int
	done  chan struct{}
	wg    sync.WaitGroup
}

// ackedToken is one message the node answered 250 to.
type ackedToken struct {
	token string
	at    time.Time
}

// startSender starts sending to users in turn, one message at a time.
func startSender(n *node, users []loadUser) *sender {
	s := &sender{acked: map[string][]ackedToken{}, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-s.done:
				return
			default:
			}
			u := users[i%len(users)]
			token := fmt.Sprintf("during-%d", i)
			if err := deliverToken(n.smtpAddr, u.address, token); err != nil {
				continue
			}
			s.mu.Lock()
			s.acked[u.address] = append(s.acked[u.address], ackedToken{token, time.Now()})
			s.total++
			s.mu.Unlock()
		}
	}()
	return s
}

// count answers how many messages were acknowledged so far.
func (s *sender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// stop ends the sender and answers, per address, the tokens
// acknowledged before t, and how many were acknowledged in all.
func (s *sender) stop(before time.Time) (map[string][]string, int) {
	close(s.done)
	s.wg.Wait()
	out := map[string][]string{}
	for addr, l := range s.acked {
		for _, a := range l {
			if a.at.Before(before) {
				out[addr] = append(out[addr], a.token)
			}
		}
	}
	return out, s.total
}

// mover is a mail client that keeps moving a message from INBOX to
// Archive and back and changing flags, so the store renames files
// while the backup copies them.
type mover struct {
	done  chan struct{}
	wg    sync.WaitGroup
	moves int
	err   error
}

// startMover signs in as u, makes the Archive folder and starts moving.
func startMover(t *testing.T, n *node, u loadUser) *mover {
	c := frontSession(t, n, u.login, u.password)
	if err := c.Create("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	m := &mover{done: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { c.Logout().Wait() }()
		for i := 0; ; i++ {
			select {
			case <-m.done:
				return
			default:
			}
			m.err = m.round(c, i)
			if m.err != nil {
				return
			}
			m.moves++
		}
	}()
	return m
}

// round changes one message's flags and moves one message to Archive
// and one back.
func (m *mover) round(c *imapclient.Client, i int) error {
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return err
	}
	op := imap.StoreFlagsAdd
	if i%2 == 1 {
		op = imap.StoreFlagsDel
	}
	st := &imap.StoreFlags{Op: op, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}
	seq := uint32(i)%sel.NumMessages + 1
	if err := c.Store(imap.SeqSetNum(seq), st, nil).Close(); err != nil {
		return err
	}
	if _, err := c.Move(imap.SeqSetNum(seq), "Archive").Wait(); err != nil {
		return err
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		return err
	}
	_, err = c.Move(imap.SeqSetNum(1), "INBOX").Wait()
	return err
}

// stop ends the mover and answers how many rounds it made, and the
// error that ended it early.
func (m *mover) stop() (int, error) {
	close(m.done)
	m.wg.Wait()
	return m.moves, m.err
}

// accountBodies answers the SHA-256 of every message in every mailbox
// of the account, with how often each is there.
func accountBodies(t *testing.T, n *node, u loadUser) map[[32]byte]int {
	t.Helper()
	c := frontSession(t, n, u.login, u.password)
	defer func() { c.Logout().Wait() }()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[[32]byte]int{}
	for _, b := range boxes {
		sel, err := c.Select(b.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{Peek: true}
		var all imap.SeqSet
		all.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(all,
			&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			out[sha256.Sum256(m.FindBodySection(section))]++
		}
	}
	return out
}

// runScript runs a program from the repository's top folder, and fails
// the test with its output when it exits non-zero.
func runScript(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := script(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", name, filepath.Base(args[0]), out)
	return out
}

// failScript runs a program that must exit non-zero, and answers its
// output.
func failScript(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := script(name, args...)
	if err == nil {
		t.Fatalf("%s %s: exited 0, want a refusal\n%s", name, strings.Join(args, " "), out)
	}
	return out
}

// runScriptEnv is runScript with the settings env added to its
// environment.
func runScriptEnv(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := scriptEnv(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", name, filepath.Base(args[0]), out)
	return out
}

// script runs a program from the repository's top folder without any
// EGRET_ setting, and answers its combined output.
func script(name string, args ...string) (string, error) {
	return scriptEnv(nil, name, args...)
}

// scriptEnv is script with the settings env (NAME=VALUE) added to the
// environment, a later one of a name winning.
func scriptEnv(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(environWithoutEgret(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// urlFile writes a database URL into a file only this user can read, as
// --database-file takes it, and answers the file's path.
func urlFile(t *testing.T, url string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "database.url")
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// readFile answers a file's content, failing the test when it cannot.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
