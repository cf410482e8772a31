package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/egretair/egret/api"
	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

type oaReport struct {
	Held     bool   `json:"held"`
	PlanID   string `json:"plan_id"`
	Stale    int    `json:"stale"`
	Accounts struct {
		Disabled int `json:"disabled"`
	} `json:"accounts"`
	Person struct {
		Created, Updated, Disabled, Enabled int
	} `json:"person"`
	DisabledAccounts []struct {
		Address string `json:"address"`
	} `json:"disabled_accounts"`
}

func TestOAChangesAndHeldPlansThroughTheAPI(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			store := dirtest.Open(t, dialect)
			ctx := context.Background()
			store.EnsureAPIKey(ctx, "admin", adminKey, []string{directory.ScopeAll})
			const oaKey, approverKey = "test-oa-key-0123456789", "test-approver-0123456789"
			store.EnsureAPIKey(ctx, "oa", oaKey, []string{"oa:sync"})
			store.EnsureAPIKey(ctx, "chief", approverKey, []string{"oa:sync", "oa:approve"})
			srv := &api.Server{Store: store, Importer: &oasync.Importer{
				Store: store, Domain: "egretair.example", DisableThreshold: 10,
			}}
			srv.SetReady(true)
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()

			small, err := os.ReadFile("../testdata/oa/ekp-small.json")
			if err != nil {
				t.Fatal(err)
			}
			var rep oaReport
			if code := call(t, ts, oaKey, "POST", "/api/v1/oa/snapshot", bytes.NewReader(small), &rep); code != 200 {
				t.Fatalf("snapshot: %d", code)
			}

			// A page that lets two people go, as a bare array.
			people := smallFixture(t)
			var page []map[string]any
			for _, p := range people[:2] {
				p["isAvailable"] = false
				p["alterTime"] = "2026-12-01 08:00:00.000"
				page = append(page, p)
			}
			body, _ := json.Marshal(page)
			if code := call(t, ts, oaKey, "POST", "/api/v1/oa/changes", bytes.NewReader(body), &rep); code != 200 ||
				rep.Person.Disabled != 2 || rep.Held {
				t.Fatalf("changes: %d %+v", code, rep)
			}
			if code := call(t, ts, oaKey, "POST", "/api/v1/oa/changes", bytes.NewReader(body), &rep); code != 200 ||
				rep.Person.Disabled != 0 || rep.Person.Updated != 0 {
				t.Errorf("the page again: %d %+v", code, rep)
			}
			var e apiError
			if code := call(t, ts, oaKey, "POST", "/api/v1/oa/changes", strings.NewReader(`[{"id":"x","type":"person"}]`), &e); code != 422 {
				t.Errorf("an invalid page: %d %+v", code, e)
			}

			// A snapshot without twelve more people is held. It names
			// the two who left as available, as the older export did, so
			// it would also take them back.
			var els []json.RawMessage
			var env struct{ Message string }
			json.Unmarshal(small, &env)
			json.Unmarshal([]byte(env.Message), &els)
			var kept []json.RawMessage
			dropped := 0
			for _, raw := range els {
				var el map[string]any
				json.Unmarshal(raw, &el)
				if el["type"] == "person" && el["isAvailable"] != false && dropped < 12 {
					id := el["id"]
					if id != people[0]["id"] && id != people[1]["id"] {
						dropped++
						continue
					}
				}
				kept = append(kept, raw)
			}
			less, _ := json.Marshal(kept)
			before := count(t, store, "accounts", "status = 'enabled'")
			if code := call(t, ts, oaKey, "POST", "/api/v1/oa/snapshot", bytes.NewReader(less), &rep); code != 202 ||
				!rep.Held || rep.PlanID == "" || len(rep.DisabledAccounts) != 12 {
				t.Fatalf("held snapshot: %d %+v", code, rep)
			}
			if n := count(t, store, "accounts", "status = 'enabled'"); n != before {
				t.Errorf("a held snapshot disabled %d accounts", before-n)
			}

			var list struct {
				Plans []struct{ ID, Status string } `json:"plans"`
			}
			if code := call(t, ts, oaKey, "GET", "/api/v1/oa/plans?status=held", nil, &list); code != 200 ||
				len(list.Plans) != 1 || list.Plans[0].ID != rep.PlanID {
				t.Errorf("plans: %d %+v", code, list)
			}
			var shown struct {
				Status string   `json:"status"`
				Report oaReport `json:"report"`
			}
			if code := call(t, ts, oaKey, "GET", "/api/v1/oa/plans/"+rep.PlanID, nil, &shown); code != 200 ||
				shown.Status != "held" || len(shown.Report.DisabledAccounts) != 12 {
				t.Errorf("plan: %d %+v", code, shown)
			}
			readOnly := "test-reader-0123456789"
			store.EnsureAPIKey(ctx, "reader", readOnly, []string{"directory:read"})
			if code := call(t, ts, readOnly, "POST", "/api/v1/oa/plans/"+rep.PlanID+"/approve", nil, &e); code != 403 {
				t.Errorf("a key without oa:approve approved: %d", code)
			}
			// The OA's own key may push changes but not wave through
			// the mass disable they cause.
			if code := call(t, ts, oaKey, "POST", "/api/v1/oa/plans/"+rep.PlanID+"/approve", nil, &e); code != 403 {
				t.Errorf("the OA's key approved its own plan: %d", code)
			}
			var applied oaReport
			if code := call(t, ts, approverKey, "POST", "/api/v1/oa/plans/"+rep.PlanID+"/approve", nil, &applied); code != 200 ||
				applied.Accounts.Disabled != 12 {
				t.Fatalf("approve: %d %+v", code, applied)
			}
			if n := count(t, store, "accounts", "status = 'enabled'"); n != before-12+2 {
				t.Errorf("after approval: %d enabled, want %d", n, before-12+2)
			}
			if code := call(t, ts, approverKey, "POST", "/api/v1/oa/plans/"+rep.PlanID+"/approve", nil, &e); code != 409 {
				t.Errorf("approving twice: %d %+v", code, e)
			}
			if code := call(t, ts, oaKey, "GET", "/api/v1/oa/plans/nope", nil, &e); code != 404 {
				t.Errorf("unknown plan: %d", code)
			}
		})
	}
}

func count(t *testing.T, s *directory.Store, table, where string) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Table(table).Where(where).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
