package oasync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

// withoutPeople answers the full export less its first n available people.
func withoutPeople(t testing.TB, n int) ([]byte, map[string]bool) {
	t.Helper()
	_, raws := elementsOf(t, fixture(t, "ekp-full.json.gz"))
	removed := map[string]bool{}
	kept := raws[:0:0]
	for _, r := range raws {
		var el struct {
			ID        string `json:"id"`
			Type      string `json:"type"`
			Available *bool  `json:"isAvailable"`
		}
		json.Unmarshal(r, &el)
		if el.Type == "person" && (el.Available == nil || *el.Available) && len(removed) < n {
			removed[el.ID] = true
			continue
		}
		kept = append(kept, r)
	}
	b, err := json.Marshal(kept)
	if err != nil {
		t.Fatal(err)
	}
	return b, removed
}

func TestASnapshotThatDisablesTooManyIsHeldUntilApproved(t *testing.T) {
	full := fixture(t, "ekp-full.json.gz")
	less, removed := withoutPeople(t, 1000)
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			imp := importer(s)
			ctx := directory.WithActor(context.Background(), "cli:ops")
			mustImport(t, s, full, false)
			before := fingerprint(t, s)

			dry, err := imp.ImportSnapshot(ctx, bytes.NewReader(less), oasync.Options{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if dry.Held || !dry.OverThreshold || dry.Accounts.Disabled != 1000 {
				t.Errorf("dry run: held %t, over %t, disabled %d", dry.Held, dry.OverThreshold, dry.Accounts.Disabled)
			}

			rep, err := imp.ImportSnapshot(ctx, bytes.NewReader(less), oasync.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Held || rep.PlanID == "" || rep.Threshold != 500 || len(rep.DisabledAccounts) != 1000 {
				t.Fatalf("got held %t, plan %q, threshold %d, %d accounts listed",
					rep.Held, rep.PlanID, rep.Threshold, len(rep.DisabledAccounts))
			}
			if after := fingerprint(t, s); after != before {
				t.Fatalf("a held snapshot wrote to the directory")
			}
			for _, a := range rep.DisabledAccounts {
				if !removed[a.OAID] || a.Reason != oasync.ReasonAbsent || a.Address == "" {
					t.Fatalf("listed %+v", a)
				}
			}
			// The same input again is the same plan, not a second one.
			again, err := imp.ImportSnapshot(ctx, bytes.NewReader(less), oasync.Options{})
			if err != nil || again.PlanID != rep.PlanID {
				t.Errorf("held again as %q (%v), want %q", again.PlanID, err, rep.PlanID)
			}
			if dry.Held || countPlans(t, imp, "") != 1 {
				t.Errorf("want one plan, the dry run holding none")
			}

			p, err := imp.Plan(ctx, rep.PlanID)
			if err != nil || p.Status != oasync.PlanHeld || p.AccountsDisabled != 1000 || p.Source != oasync.KindSnapshot {
				t.Fatalf("plan: %+v, %v", p, err)
			}

			applied, err := imp.Approve(directory.WithActor(context.Background(), "cli:chief"), rep.PlanID, oasync.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if applied.Held || applied.Accounts.Disabled != 1000 || applied.Person.Disabled != 1000 || applied.Person.Absent != 1000 {
				t.Errorf("approved: held %t, accounts %+v, people %+v", applied.Held, applied.Accounts, applied.Person)
			}
			if n := count(t, s, &directory.Account{}, "status = ?", directory.AccountEnabled); n != 10509-1000 {
				t.Errorf("enabled accounts: got %d, want %d", n, 10509-1000)
			}
			for oa := range removed {
				u := personByOA(t, s, oa)
				if u.Status != directory.PersonLeft || u.Account.Status != directory.AccountDisabled {
					t.Fatalf("%s: status %q, account %q", oa, u.Status, u.Account.Status)
				}
				break
			}
			var actors []string
			s.DB().Model(&directory.Change{}).Where("op = ?", directory.OpDisable).Distinct().Pluck("actor", &actors)
			if len(actors) != 1 || !strings.HasPrefix(actors[0], "cli:chief/oa:snapshot@") ||
				!strings.Contains(actors[0], "approved:"+rep.PlanID) {
				t.Errorf("disables recorded as %v", actors)
			}

			_, err = imp.Approve(ctx, rep.PlanID, oasync.Options{})
			if !errors.Is(err, oasync.ErrPlanNotHeld) {
				t.Errorf("approving twice: got %v", err)
			}
			if p, _ := imp.Plan(ctx, rep.PlanID); p.Status != oasync.PlanApplied || p.DecidedBy == "" {
				t.Errorf("plan after approval: %+v", p)
			}
			// The same snapshot again has nothing left to disable.
			if rep := mustImport(t, s, less, false); rep.Held || rep.Accounts.Disabled != 0 {
				t.Errorf("re-import: held %t, disabled %d", rep.Held, rep.Accounts.Disabled)
			}
		})
	}
}

func countPlans(t testing.TB, imp *oasync.Importer, status string) int {
	t.Helper()
	ps, err := imp.Plans(context.Background(), status)
	if err != nil {
		t.Fatal(err)
	}
	return len(ps)
}

func TestApprovalReplansAgainstTheDirectory(t *testing.T) {
	at := func(el obj, ts string) obj { el["alterTime"] = ts; return el }
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			imp := importer(s)
			imp.DisableThreshold = 1
			ctx := context.Background()
			mustImport(t, s, envelope(t, base()), false)

			// A snapshot without Li and Zhao: two accounts, over the
			// threshold of one.
			els := base()
			snapshot := envelope(t, []obj{els[0], els[1], els[2], els[3], els[4], els[7]})
			hold := func(t *testing.T, disables int) *oasync.Report {
				t.Helper()
				rep, err := imp.ImportSnapshot(ctx, bytes.NewReader(snapshot), oasync.Options{})
				if err != nil || !rep.Held || rep.Accounts.Disabled != disables {
					t.Fatalf("got %+v, %v", rep, err)
				}
				return rep
			}

			t.Run("fewer disables than shown are applied", func(t *testing.T) {
				rep := hold(t, 2)
				zhao := at(personEl("u-zhao", "赵敏", "d-fly", "zhaomin", nil, ""), "2026-12-01 08:00:00.000")
				zhao["isAvailable"] = false
				mustChanges(t, s, envelope(t, []obj{zhao}), false)
				applied, err := imp.Approve(ctx, rep.PlanID, oasync.Options{})
				if err != nil || applied.Accounts.Disabled != 1 || applied.DisabledAccounts[0].OAID != "u-li" {
					t.Fatalf("got %+v, %v", applied, err)
				}
			})

			t.Run("a disable the approver did not see is refused", func(t *testing.T) {
				mustImport(t, s, envelope(t, base()), false) // everyone back
				rep := hold(t, 2)
				hire := at(personEl("u-new", "新人", "d-ops", "xinren", nil, ""), "2026-12-02 08:00:00.000")
				mustChanges(t, s, envelope(t, []obj{hire}), false)
				before := fingerprint(t, s)
				_, err := imp.Approve(ctx, rep.PlanID, oasync.Options{})
				var pc *oasync.PlanChangedError
				if !errors.As(err, &pc) || len(pc.Unlisted) != 1 || pc.Unlisted[0].OAID != "u-new" ||
					!strings.Contains(err.Error(), "xinren@") {
					t.Fatalf("got %v", err)
				}
				if after := fingerprint(t, s); after != before {
					t.Errorf("a refused approval wrote to the directory")
				}
				if p, _ := imp.Plan(ctx, rep.PlanID); p.Status != oasync.PlanSuperseded {
					t.Errorf("plan status %q, want superseded", p.Status)
				}
			})

			t.Run("input that is now invalid is refused", func(t *testing.T) {
				mustImport(t, s, envelope(t, append(base(), personEl("u-new", "新人", "d-ops", "xinren", nil, ""))), false)
				rep := hold(t, 3)
				// Wang's login goes to a new person, so the held snapshot's
				// Wang now collides with someone it does not name.
				wang := at(personEl("u-wang", "王伟", "d-ops", "wangwei2", "wangwei@egretair.example", ""), "2026-12-03 08:00:00.000")
				other := at(personEl("u-other", "王伟", "d-fly", "WangWei", "wangwei.b@egretair.example", ""), "2026-12-03 08:00:01.000")
				mustChanges(t, s, envelope(t, []obj{wang, other}), false)
				_, err := imp.Approve(ctx, rep.PlanID, oasync.Options{})
				var inv *oasync.InvalidError
				if !errors.As(err, &inv) || !strings.Contains(err.Error(), "collides") {
					t.Fatalf("got %v, want the input refused", err)
				}
				if p, _ := imp.Plan(ctx, rep.PlanID); p.Status != oasync.PlanHeld {
					t.Errorf("plan status %q, want still held", p.Status)
				}
			})
		})
	}
}
