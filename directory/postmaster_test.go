package directory_test

import (
	"context"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

func TestPostmasterAndAbuseAlwaysReceive(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s := dirtest.Open(t, dialect)
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}

			pm, err := l.EnsurePostmaster(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"postmaster@egretair.example", "Postmaster@EgretAir.Example", "abuse@egretair.example"} {
				got, err := s.LookupAddress(ctx, addr)
				if err != nil || got.ID != pm.ID {
					t.Errorf("%s resolves to %+v, %v; want the postmaster account %s", addr, got, err, pm.ID)
				}
			}

			// A second start finds the mailbox and makes no other.
			again, err := l.EnsurePostmaster(ctx)
			if err != nil || again.ID != pm.ID {
				t.Fatalf("second call: %+v, %v; want %s again", again, err, pm.ID)
			}
			var n int64
			s.DB().Model(&directory.Account{}).Count(&n)
			if n != 1 {
				t.Fatalf("%d accounts after two calls, want 1", n)
			}
		})
	}
}
