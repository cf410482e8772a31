package api_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore/mailview"
)

// factsByAccount is a FactsReader that answers empty facts and
// remembers the account it was asked about.
type factsByAccount struct{ last string }

func (f *factsByAccount) Facts(ctx context.Context, accountID string, quota int64, latest int) (mailview.Facts, error) {
	f.last = accountID
	return mailview.Facts{QuotaBytes: quota}, nil
}

// TestEveryUserRouteTakesALoginAndAnOAID calls every /users/{id} route
// the server registers with the user's login, in another case, and
// with their OA id, and checks that each acts on that user.
func TestEveryUserRouteTakesALoginAndAnOAID(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := newLifecycleEnv(t, dialect)
			facts := &factsByAccount{}
			env.srv.Facts = facts

			var org, ops directory.UnitView
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "鹭航航空", "kind": "org"}, 201, &org)
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "运行控制部", "parent_id": org.ID}, 201, &ops)
			var nu directory.User
			env.do(t, "POST", "/api/v1/users", map[string]any{
				"login": "nu.tester", "display_name": "新用户", "oa_id": "oa-nu-1", "unit_id": org.ID,
			}, 201, &nu)

			// Each step names the user by id; the route is the one
			// registered, so a route added later without a step here
			// fails the test below.
			type step struct {
				route, method, path string
				body                any
				status              int
				check               func(t *testing.T, raw map[string]any)
			}
			isUser := func(t *testing.T, raw map[string]any) {
				t.Helper()
				if raw["id"] != nu.ID {
					t.Fatalf("answered user %v, want %s", raw["id"], nu.ID)
				}
			}
			steps := func(id string) []step {
				alias := "a." + strings.ToLower(id) + "@egretair.example"
				return []step{
					{"GET /api/v1/users/{id}", "GET", "", nil, 200, isUser},
					{"PATCH /api/v1/users/{id}", "PATCH", "", map[string]any{"title": "值班员 " + id}, 200,
						func(t *testing.T, raw map[string]any) {
							isUser(t, raw)
							if raw["title"] != "值班员 "+id {
								t.Fatalf("title %v", raw["title"])
							}
						}},
					{"POST /api/v1/users/{id}/move", "POST", "/move", map[string]any{"unit_id": ops.ID}, 200,
						func(t *testing.T, raw map[string]any) {
							isUser(t, raw)
							if raw["unit_id"] != ops.ID {
								t.Fatalf("unit %v after the move, want %s", raw["unit_id"], ops.ID)
							}
						}},
					{"POST /api/v1/users/{id}/disable", "POST", "/disable", nil, 200, accountStatus(nu.ID, "disabled")},
					{"POST /api/v1/users/{id}/enable", "POST", "/enable", nil, 200, accountStatus(nu.ID, "enabled")},
					{"POST /api/v1/users/{id}/password", "POST", "/password", map[string]any{"password": "航班准点 " + id}, 204, nil},
					{"POST /api/v1/users/{id}/aliases", "POST", "/aliases", map[string]any{"address": alias}, 201, nil},
					{"GET /api/v1/users/{id}/aliases", "GET", "/aliases", nil, 200,
						func(t *testing.T, raw map[string]any) {
							list, _ := raw["aliases"].([]any)
							for _, a := range list {
								if a.(map[string]any)["address"] == alias {
									return
								}
							}
							t.Fatalf("aliases %v lack %s", raw["aliases"], alias)
						}},
					{"DELETE /api/v1/users/{id}/aliases/{address}", "DELETE", "/aliases/" + url.PathEscape(alias), nil, 204, nil},
					{"POST /api/v1/users/{id}/address", "POST", "/address",
						map[string]any{"address": "m." + strings.ToLower(id) + "@egretair.example"}, 200, isUser},
					{"GET /api/v1/users/{id}/mailbox", "GET", "/mailbox", nil, 200,
						func(t *testing.T, raw map[string]any) {
							if raw["account_id"] != nu.Account.ID || facts.last != nu.Account.ID {
								t.Fatalf("facts of account %v (read %s), want %s", raw["account_id"], facts.last, nu.Account.ID)
							}
						}},
					{"DELETE /api/v1/users/{id}", "DELETE", "", nil, 200, accountStatus(nu.ID, "deleted")},
					{"POST /api/v1/users/{id}/restore", "POST", "/restore", nil, 200, accountStatus(nu.ID, "enabled")},
				}
			}

			covered := map[string]bool{}
			for _, id := range []string{"NU.Tester", "oa-nu-1"} {
				for _, s := range steps(id) {
					covered[s.route] = true
					var raw map[string]any
					env.do(t, s.method, "/api/v1/users/"+url.PathEscape(id)+s.path, s.body, s.status, &raw)
					if s.check != nil {
						t.Run(s.route+" by "+id, func(t *testing.T) { s.check(t, raw) })
					}
				}
			}
			for _, route := range env.srv.Routes() {
				if strings.Contains(route, " /api/v1/users/{id}") && !covered[route] {
					t.Errorf("route %s is not called by login and OA id here", route)
				}
			}

			// A name no user goes by is not found on any route, and the
			// answer says which.
			var e apiError
			code := call(t, env.ts, adminKey, "POST", "/api/v1/users/nobody.here/disable", strings.NewReader(""), &e)
			if code != 404 || e.Error.Code != "not_found" || !strings.Contains(e.Error.Message, `"nobody.here"`) {
				t.Fatalf("an unknown login: %d %+v", code, e)
			}
		})
	}
}

// accountStatus checks that the answer is the user id with the account
// in status.
func accountStatus(id, status string) func(t *testing.T, raw map[string]any) {
	return func(t *testing.T, raw map[string]any) {
		t.Helper()
		acct, _ := raw["account"].(map[string]any)
		if raw["id"] != id || acct == nil || acct["status"] != status {
			t.Fatalf("answered user %v with account %v, want %s %s", raw["id"], acct, id, status)
		}
	}
}

// TestOrgUnitsAreListedFromTheTop lists the units without a parent, then
// a unit's children by its id and by its OA id, a page at a time.
func TestOrgUnitsAreListedFromTheTop(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := newLifecycleEnv(t, dialect)
			var org, other directory.UnitView
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "鹭航航空", "kind": "org", "oa_id": "oa-root"}, 201, &org)
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "鹭航货运", "kind": "org", "sort_order": 1}, 201, &other)
			var kids []directory.UnitView
			for i, name := range []string{"运行控制部", "乘务部", "机务部"} {
				var u directory.UnitView
				env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": name, "parent_id": org.ID, "sort_order": 3 - i}, 201, &u)
				kids = append(kids, u)
			}
			var grandchild directory.UnitView
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "客舱一队", "parent_id": kids[1].ID}, 201, &grandchild)

			type page struct {
				OrgUnits []directory.OrgUnit `json:"orgunits"`
				Total    int64               `json:"total"`
				Page     int                 `json:"page"`
				PerPage  int                 `json:"per_page"`
			}
			ids := func(p page) []string {
				var out []string
				for _, u := range p.OrgUnits {
					out = append(out, u.ID)
				}
				return out
			}
			var top page
			env.do(t, "GET", "/api/v1/orgunits", nil, 200, &top)
			if top.Total != 2 || strings.Join(ids(top), ",") != org.ID+","+other.ID || top.PerPage != 50 {
				t.Fatalf("top-level units: %+v; want %s then %s", top, org.ID, other.ID)
			}
			for _, parent := range []string{org.ID, "oa-root"} {
				var children page
				env.do(t, "GET", "/api/v1/orgunits?parent="+parent, nil, 200, &children)
				want := kids[2].ID + "," + kids[1].ID + "," + kids[0].ID
				if children.Total != 3 || strings.Join(ids(children), ",") != want {
					t.Fatalf("children of %s: %v (total %d), want %s in sort order", parent, ids(children), children.Total, want)
				}
			}
			var second page
			env.do(t, "GET", "/api/v1/orgunits?parent="+org.ID+"&per_page=2&page=2", nil, 200, &second)
			if second.Total != 3 || second.Page != 2 || len(second.OrgUnits) != 1 || second.OrgUnits[0].ID != kids[0].ID {
				t.Fatalf("second page of two: %+v", second)
			}
			var leaf page
			env.do(t, "GET", "/api/v1/orgunits?parent="+grandchild.ID, nil, 200, &leaf)
			if leaf.Total != 0 || leaf.OrgUnits == nil {
				t.Fatalf("children of a leaf: %+v; want an empty list", leaf)
			}

			var e apiError
			if code := call(t, env.ts, adminKey, "GET", "/api/v1/orgunits?parent=no-such-unit", nil, &e); code != 404 || e.Error.Code != "not_found" {
				t.Fatalf("children of an unknown unit: %d %+v", code, e)
			}
			if code := call(t, env.ts, adminKey, "GET", "/api/v1/orgunits?per_page=0", nil, &e); code != 400 || e.Error.Code != "bad_request" {
				t.Fatalf("a page of none: %d %+v", code, e)
			}
		})
	}
}
