package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/directory"
)

// run runs egret with args against the database of the environment and
// answers what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, stdin: strings.NewReader("")}
	root := a.root()
	root.SetArgs(args)
	ctx := directory.WithActor(context.Background(), "cli:tester")
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestAPIKeyAuditAndPurgeCommands(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "egret.db")
	t.Setenv("EGRET_NODE_DATA_DIR", dir)
	t.Setenv("EGRET_DATABASE_URL", dbURL)
	t.Setenv("EGRET_LOG_LEVEL", "error")

	if _, err := run(t, "apikey", "create", "oa", "--scope", "oa:sync,directory:flying"); err == nil ||
		!strings.Contains(err.Error(), "directory:flying") {
		t.Fatalf("an unknown scope: %v", err)
	}
	secret, err := run(t, "apikey", "create", "oa", "--scope", "oa:sync", "--scope", "directory:read")
	if err != nil {
		t.Fatal(err)
	}
	secret = strings.TrimSpace(secret)
	if _, err := run(t, "apikey", "create", "oa", "--scope", "oa:sync"); err == nil {
		t.Fatal("a second live key of the same name was made")
	}

	s, err := directory.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.VerifyAPIKey(context.Background(), secret)
	if err != nil || !k.HasScope("directory:read") || k.HasScope("directory:write") {
		t.Fatalf("the printed secret: %+v, %v", k, err)
	}

	list, err := run(t, "apikey", "list")
	if err != nil || !strings.Contains(list, "oa:sync directory:read") || strings.Contains(list, secret) {
		t.Fatalf("list: %v\n%s", err, list)
	}
	if _, err := run(t, "apikey", "revoke", "oa"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyAPIKey(context.Background(), secret); err == nil {
		t.Fatal("a revoked key still works")
	}
	if list, _ := run(t, "apikey", "list"); !strings.Contains(list, "revoked") {
		t.Fatalf("list after revoke:\n%s", list)
	}

	// An account deleted with no retention left is purged by the
	// command, and the audit trail shows who did each step.
	life := &directory.Lifecycle{Store: s, Domain: "egretair.example", Retention: time.Nanosecond}
	ctx := directory.WithActor(context.Background(), "api:oa")
	u, err := life.CreateUser(ctx, directory.NewUser{Login: "zhaolei", DisplayName: "赵磊"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := life.DeleteUser(ctx, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "account", "purge")
	if err != nil || !strings.Contains(out, "purged "+u.Account.ID) {
		t.Fatalf("purge: %v\n%s", err, out)
	}

	out, err = run(t, "audit", "--entity-id", u.Account.ID, "--all")
	if err != nil {
		t.Fatal(err)
	}
	var ops, actors []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e directory.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		ops, actors = append(ops, e.Op), append(actors, e.Actor)
	}
	if strings.Join(ops, ",") != "create,delete,purge" || strings.Join(actors, ",") != "api:oa,api:oa,cli:tester" {
		t.Fatalf("audit of the account: ops %v by %v", ops, actors)
	}
	keys, err := run(t, "audit", "--entity", "apikey")
	if err != nil || strings.Count(keys, "\n") != 2 || !strings.Contains(keys, `"actor":"cli:tester"`) {
		t.Fatalf("audit of API keys: %v\n%s", err, keys)
	}
}
