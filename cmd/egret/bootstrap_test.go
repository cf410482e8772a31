package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

func TestBootstrapKeyFollowsTheConfiguration(t *testing.T) {
	ctx := context.Background()
	dir := dirtest.Open(t, "sqlite")
	a := &app{log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	steps := []struct {
		name       string
		key        string
		live, dead []string
	}{
		{"a configured key is seeded with every scope", "first-key-0123456789", []string{"first-key-0123456789"}, nil},
		{"a new key replaces the old one", "second-key-0123456789", []string{"second-key-0123456789"}, []string{"first-key-0123456789"}},
		{"no key configured revokes the seeded one", "", nil, []string{"second-key-0123456789"}},
		{"still none configured is no error", "", nil, []string{"second-key-0123456789"}},
	}
	for _, st := range steps {
		a.cfg.API.BootstrapKey = st.key
		if err := a.seedBootstrapKey(ctx, dir); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, k := range st.live {
			got, err := dir.VerifyAPIKey(ctx, k)
			if err != nil || !got.HasScope("oa:sync") {
				t.Errorf("%s: key %s: %v, %v; want live with every scope", st.name, k, got, err)
			}
		}
		for _, k := range st.dead {
			if _, err := dir.VerifyAPIKey(ctx, k); !errors.Is(err, directory.ErrBadKey) {
				t.Errorf("%s: key %s still works (%v)", st.name, k, err)
			}
		}
	}
}

// TestFrontLeavesTheBootstrapKeyAlone checks that a front started
// without the variable does not revoke the key the other fronts of its
// cluster were started with: they share one directory.
func TestFrontLeavesTheBootstrapKeyAlone(t *testing.T) {
	ctx := context.Background()
	dir := dirtest.Open(t, "sqlite")
	a := &app{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.cfg.Node.Role = "front"
	a.cfg.API.BootstrapKey = "cluster-key-0123456789"
	if err := a.seedBootstrapKey(ctx, dir); err != nil {
		t.Fatal(err)
	}
	a.cfg.API.BootstrapKey = ""
	if err := a.seedBootstrapKey(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.VerifyAPIKey(ctx, "cluster-key-0123456789"); err != nil {
		t.Fatalf("the key seeded by one front was revoked by another started without it: %v", err)
	}
}
