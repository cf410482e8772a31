package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/egretair/egret/api"
	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

const adminKey = "test-admin-key-0123456789"

// newServer answers an API server over a fresh directory, with one key
// that may do everything.
func newServer(t *testing.T, dialect string) (*httptest.Server, *directory.Store) {
	t.Helper()
	store := dirtest.Open(t, dialect)
	if _, err := store.EnsureAPIKey(context.Background(), "admin", adminKey, []string{directory.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{
		Store:    store,
		Importer: &oasync.Importer{Store: store, Domain: "egretair.example"},
	}
	srv.SetReady(true)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, store
}

// call makes a request and decodes the JSON answer into out (if not nil).
func call(t *testing.T, ts *httptest.Server, key, method, path string, body io.Reader, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func importSmall(t *testing.T, ts *httptest.Server) {
	t.Helper()
	data, err := os.ReadFile("../testdata/oa/ekp-small.json")
	if err != nil {
		t.Fatal(err)
	}
	var report map[string]any
	if code := call(t, ts, adminKey, "POST", "/api/v1/oa/snapshot", bytes.NewReader(data), &report); code != 200 {
		t.Fatalf("snapshot import: status %d: %v", code, report)
	}
}

// smallFixture answers the persons of ekp-small.json as the OA sent them.
func smallFixture(t *testing.T) []map[string]any {
	t.Helper()
	data, err := os.ReadFile("../testdata/oa/ekp-small.json")
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Message string }
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	var elems []map[string]any
	if err := json.Unmarshal([]byte(env.Message), &elems); err != nil {
		t.Fatal(err)
	}
	var people []map[string]any
	for _, e := range elems {
		if e["type"] == "person" {
			people = append(people, e)
		}
	}
	return people
}

func TestUsersAndOrgUnitsAfterImport(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ts, _ := newServer(t, dialect)
			importSmall(t, ts)
			people := smallFixture(t)

			available := 0
			for _, p := range people {
				if p["isAvailable"] == true {
					available++
				}
			}
			var list struct {
				Users []directory.User `json:"users"`
				Total int64            `json:"total"`
			}
			if code := call(t, ts, adminKey, "GET", "/api/v1/users?status=enabled&per_page=7", nil, &list); code != 200 {
				t.Fatalf("list: status %d", code)
			}
			if list.Total != int64(available) || len(list.Users) != min(7, available) {
				t.Fatalf("enabled users: total %d, page %d; the fixture has %d available people",
					list.Total, len(list.Users), available)
			}

			// Every person can be found by login, in any case, and reads
			// back with the OA's data.
			p := people[0]
			login := strings.ToUpper(p["loginName"].(string))
			if code := call(t, ts, adminKey, "GET", "/api/v1/users?login="+login, nil, &list); code != 200 || list.Total != 1 {
				t.Fatalf("by login %s: status %d, total %d", login, code, list.Total)
			}
			u := list.Users[0]
			if u.DisplayName != p["name"] || u.OAID == nil || *u.OAID != p["id"] || u.Account == nil {
				t.Fatalf("user %s reads back as %+v", p["id"], u)
			}

			var one directory.User
			if code := call(t, ts, adminKey, "GET", "/api/v1/users/"+u.ID, nil, &one); code != 200 || one.ID != u.ID {
				t.Fatalf("get user: status %d, %+v", code, one)
			}

			// The person's unit lists them among its people, and its
			// parent lists it among its children.
			var unit directory.UnitView
			if code := call(t, ts, adminKey, "GET", "/api/v1/orgunits/"+*u.UnitID, nil, &unit); code != 200 || unit.People == 0 {
				t.Fatalf("unit of user: status %d, %+v", code, unit)
			}
			var byUnit struct{ Total int64 }
			call(t, ts, adminKey, "GET", "/api/v1/users?orgunit="+unit.ID, nil, &byUnit)
			if byUnit.Total != unit.People {
				t.Fatalf("unit %s counts %d people, the filter finds %d", unit.ID, unit.People, byUnit.Total)
			}
			if unit.ParentID != nil {
				var parent directory.UnitView
				call(t, ts, adminKey, "GET", "/api/v1/orgunits/"+*unit.ParentID, nil, &parent)
				found := false
				for _, c := range parent.Children {
					found = found || c.ID == unit.ID
				}
				if !found {
					t.Fatalf("parent %s does not list child %s", parent.ID, unit.ID)
				}
			}
		})
	}
}

func TestPasswordChangeThroughTheAPI(t *testing.T) {
	ts, store := newServer(t, "sqlite")
	importSmall(t, ts)
	var list struct{ Users []directory.User }
	call(t, ts, adminKey, "GET", "/api/v1/users?status=enabled&per_page=1", nil, &list)
	u := list.Users[0]

	var e apiError
	code := call(t, ts, adminKey, "POST", "/api/v1/users/"+u.ID+"/password", strings.NewReader(`{"password":"short"}`), &e)
	if code != 422 || e.Error.Code != "invalid" {
		t.Fatalf("weak password: status %d, %+v", code, e)
	}
	code = call(t, ts, adminKey, "POST", "/api/v1/users/"+u.ID+"/password", strings.NewReader(`{"password":"航班准点 on time"}`), nil)
	if code != 204 {
		t.Fatalf("set password: status %d", code)
	}
	if _, err := store.Authenticate(context.Background(), u.Login, "航班准点 on time"); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
}

func TestErrorsAreJSONWithTheRightStatus(t *testing.T) {
	ts, store := newServer(t, "sqlite")
	_, readOnly, err := store.CreateAPIKey(context.Background(), "reader", []string{"directory:read"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"a request without a key is unauthorised", "", "GET", "/api/v1/users", "", 401, "unauthorized"},
		{"an unknown key is unauthorised", "nope-nope-nope-nope", "GET", "/api/v1/users", "", 401, "unauthorized"},
		{"a key without the scope is forbidden", readOnly, "POST", "/api/v1/oa/snapshot", "[]", 403, "forbidden"},
		{"an unknown user is not found", adminKey, "GET", "/api/v1/users/no-such-id", "", 404, "not_found"},
		{"an unknown unit is not found", adminKey, "GET", "/api/v1/orgunits/no-such-id", "", 404, "not_found"},
		{"an unknown status filter is a bad request", adminKey, "GET", "/api/v1/users?status=sleeping", "", 400, "bad_request"},
		{"a page size over the limit is a bad request", adminKey, "GET", "/api/v1/users?per_page=100000", "", 400, "bad_request"},
		{"an unknown endpoint is not found", adminKey, "GET", "/api/v1/nothing", "", 404, "not_found"},
		{"a password body that is not JSON is a bad request", adminKey, "POST", "/api/v1/users/x/password", "pw", 400, "bad_request"},
		{"a snapshot that is not JSON is a bad request", adminKey, "POST", "/api/v1/oa/snapshot", "{not json", 400, "bad_request"},
		{"a snapshot with an invalid element is unprocessable", adminKey, "POST", "/api/v1/oa/snapshot",
			`[{"id":"d1","type":"department","name":"x"}]`, 422, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e apiError
			code := call(t, ts, c.key, c.method, c.path, strings.NewReader(c.body), &e)
			if code != c.status || e.Error.Code != c.code || e.Error.Message == "" {
				t.Fatalf("status %d, error %+v; want %d %s with a message", code, e, c.status, c.code)
			}
		})
	}
}

func TestHealthzWaitsForReadiness(t *testing.T) {
	store := dirtest.Open(t, "sqlite")
	srv := &api.Server{Store: store, Importer: &oasync.Importer{Store: store, Domain: "egretair.example"}}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	if code := call(t, ts, "", "GET", "/healthz", nil, nil); code != 503 {
		t.Fatalf("before ready: %d, want 503", code)
	}
	srv.SetReady(true)
	if code := call(t, ts, "", "GET", "/healthz", nil, nil); code != 200 {
		t.Fatalf("when ready: %d, want 200", code)
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	ts, store := newServer(t, "sqlite")
	var doc struct {
		Paths map[string]map[string]struct {
			Scope string `json:"x-scope"`
		} `json:"paths"`
	}
	if code := call(t, ts, "", "GET", "/api/v1/openapi.json", nil, &doc); code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}

	// Every route the server registers, now and later, must be in the
	// document with its scope; a key with every other scope is refused
	// it, and a key with just that scope is let through.
	srv := &api.Server{Store: store, Importer: &oasync.Importer{Store: store, Domain: "egretair.example"}}
	routes := srv.Routes()
	checked := 0
	for _, route := range routes {
		method, path, ok := strings.Cut(route, " ")
		if !ok || !strings.HasPrefix(path, "/api/v1/") || path == "/api/v1/openapi.json" {
			continue
		}
		checked++
		rel := strings.TrimPrefix(path, "/api/v1")
		op, ok := doc.Paths[rel][strings.ToLower(method)]
		if !ok {
			t.Errorf("openapi.json lacks %s %s", strings.ToLower(method), rel)
			continue
		}
		if !slices.Contains(directory.Scopes, op.Scope) || op.Scope == directory.ScopeAll {
			t.Errorf("%s: x-scope %q is not a scope", route, op.Scope)
			continue
		}
		var others []string
		for _, sc := range directory.Scopes {
			if sc != op.Scope && sc != directory.ScopeAll {
				others = append(others, sc)
			}
		}
		ctx := context.Background()
		_, without, err := store.CreateAPIKey(ctx, "without "+route, others)
		if err != nil {
			t.Fatal(err)
		}
		_, with, err := store.CreateAPIKey(ctx, "with "+route, []string{op.Scope})
		if err != nil {
			t.Fatal(err)
		}
		url := strings.NewReplacer("{id}", "no-such-id", "{address}", "x@egretair.example").Replace(path)
		if code := call(t, ts, "", method, url, strings.NewReader("{}"), nil); code != 401 {
			t.Errorf("%s without a key: %d, want 401", route, code)
		}
		if code := call(t, ts, without, method, url, strings.NewReader("{}"), nil); code != 403 {
			t.Errorf("%s with every scope but %s: %d, want 403", route, op.Scope, code)
		}
		if code := call(t, ts, with, method, url, strings.NewReader("{}"), nil); code == 401 || code == 403 {
			t.Errorf("%s with scope %s: %d", route, op.Scope, code)
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d routes of %v; the route list is not being read", checked, routes)
	}
}
