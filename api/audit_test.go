package api_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

// TestEveryWriteLeavesAnAuditRow calls every route that changes the
// directory once and reads the change log after each call: each must
// have added rows, every one by the calling key, and every one that
// changes or removes a record must carry the record as it was.
func TestEveryWriteLeavesAnAuditRow(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := newLifecycleEnv(t, dialect)
			var org, dept, spare directory.UnitView
			var wang directory.User
			ids := map[string]*string{}
			id := func(name string) string { return *ids[name] }
			ids["org"], ids["dept"], ids["spare"], ids["wang"] = &org.ID, &dept.ID, &spare.ID, &wang.ID

			type step struct {
				method, path string
				body         any
				status       int
				out          any
			}
			steps := []step{
				{"POST", "/api/v1/orgunits", map[string]any{"name": "鹭航航空", "kind": "org"}, 201, &org},
				{"POST", "/api/v1/orgunits", map[string]any{"name": "运行控制部", "parent_id": "{org}"}, 201, &dept},
				{"POST", "/api/v1/orgunits", map[string]any{"name": "签派室", "parent_id": "{org}"}, 201, &spare},
				{"PATCH", "/api/v1/orgunits/{spare}", map[string]any{"name": "签派中心"}, 200, nil},
				{"POST", "/api/v1/orgunits/{spare}/move", map[string]any{"parent_id": "{dept}"}, 200, nil},
				{"DELETE", "/api/v1/orgunits/{spare}", nil, 204, nil},
				{"POST", "/api/v1/users", map[string]any{"login": "wangwei", "display_name": "王伟", "unit_id": "{dept}"}, 201, &wang},
				{"PATCH", "/api/v1/users/{wang}", map[string]any{"title": "值班经理"}, 200, nil},
				{"POST", "/api/v1/users/{wang}/password", map[string]any{"password": "a long enough secret"}, 204, nil},
				{"POST", "/api/v1/users/{wang}/move", map[string]any{"unit_id": "{org}"}, 200, nil},
				{"POST", "/api/v1/users/{wang}/aliases", map[string]any{"address": "wei.wang@egretair.example"}, 201, nil},
				{"DELETE", "/api/v1/users/{wang}/aliases/wei.wang@egretair.example", nil, 204, nil},
				{"POST", "/api/v1/users/{wang}/address", map[string]any{"address": "w.wang@egretair.example"}, 200, nil},
				{"POST", "/api/v1/users/{wang}/disable", nil, 200, nil},
				{"POST", "/api/v1/users/{wang}/enable", nil, 200, nil},
				{"DELETE", "/api/v1/users/{wang}", nil, 200, nil},
				{"POST", "/api/v1/users/{wang}/restore", nil, 200, nil},
			}
			expand := func(s string) string {
				for name := range ids {
					s = strings.ReplaceAll(s, "{"+name+"}", id(name))
				}
				return s
			}
			seen := map[string]bool{}
			for _, st := range steps {
				path := expand(st.path)
				body := st.body
				if m, ok := body.(map[string]any); ok {
					for k, v := range m {
						if s, ok := v.(string); ok {
							m[k] = expand(s)
						}
					}
				}
				var last int64
				env.store.DB().Model(&directory.Change{}).Select("COALESCE(MAX(seq), 0)").Scan(&last)
				env.do(t, st.method, path, body, st.status, st.out)
				var rows []directory.Change
				env.store.DB().Where("seq > ?", last).Order("seq").Find(&rows)
				what := st.method + " " + st.path
				seen[routeOf(what)] = true
				if len(rows) == 0 {
					t.Errorf("%s left no change-log row", what)
				}
				for _, c := range rows {
					if c.Actor != "api:admin" {
						t.Errorf("%s: row %d by %q, want api:admin", what, c.Seq, c.Actor)
					}
					if c.Op != directory.OpCreate && c.Before == nil {
						t.Errorf("%s: row %d (%s %s) has no before", what, c.Seq, c.Op, c.Entity)
					}
				}
			}

			// Every write route of the lifecycle is in the table. A
			// unit's mailing list has its own API and tests.
			for _, r := range env.srv.Routes() {
				method, path, _ := strings.Cut(r, " ")
				lifecycle := strings.HasPrefix(path, "/api/v1/users") || strings.HasPrefix(path, "/api/v1/orgunits")
				if method == "GET" || !lifecycle || strings.HasSuffix(path, "/list") {
					continue
				}
				if !seen[r] {
					t.Errorf("write route %s is not exercised here; add it to the table", r)
				}
			}
		})
	}
}

// routeOf answers the route pattern a step of the table calls.
func routeOf(step string) string {
	step = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(step, "{id}")
	return strings.Replace(step, "/aliases/wei.wang@egretair.example", "/aliases/{address}", 1)
}
