package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egretair/egret/api"
	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// lifecycleEnv is an API server whose lifecycle runs on a test clock and
// records the mailboxes it was asked to remove.
type lifecycleEnv struct {
	ts      *httptest.Server
	srv     *api.Server
	store   *directory.Store
	life    *directory.Lifecycle
	clock   *clock
	mu      sync.Mutex
	removed []string
}

func newLifecycleEnv(t *testing.T, dialect string) *lifecycleEnv {
	t.Helper()
	store := dirtest.Open(t, dialect)
	if _, err := store.EnsureAPIKey(context.Background(), "admin", adminKey, []string{directory.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	env := &lifecycleEnv{store: store, clock: &clock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}}
	env.life = &directory.Lifecycle{
		Store: store, Domain: "egretair.example", Retention: 30 * 24 * time.Hour, Now: env.clock.Now,
		RemoveMailbox: func(ctx context.Context, id string) error {
			env.mu.Lock()
			defer env.mu.Unlock()
			env.removed = append(env.removed, id)
			return nil
		},
	}
	srv := &api.Server{
		Store:     store,
		Importer:  &oasync.Importer{Store: store, Domain: "egretair.example"},
		Lifecycle: env.life,
	}
	srv.SetReady(true)
	env.srv = srv
	env.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(env.ts.Close)
	return env
}

// do calls the API with the admin key and a JSON body (none when body is
// nil), decodes the answer into out, and fails t unless the status is
// want.
func (e *lifecycleEnv) do(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var r *strings.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	} else {
		r = strings.NewReader("")
	}
	var raw json.RawMessage
	code := call(t, e.ts, adminKey, method, path, r, &raw)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	if out != nil && len(raw) > 0 {
		// Start from zero: fields the answer omits must not keep the
		// values of an earlier answer.
		reflect.ValueOf(out).Elem().SetZero()
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// conflictErr is the 409 answer with its details.
type conflictErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details struct {
			Field   string             `json:"field"`
			Holders []directory.Holder `json:"holders"`
		} `json:"details"`
	} `json:"error"`
}

func TestLifecycleRoundTrips(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := newLifecycleEnv(t, dialect)
			ctx := context.Background()

			// Org units: a company, two departments, a third under the
			// second.
			var org, ops, crew, cabin directory.UnitView
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "鹭航航空", "kind": "org", "oa_id": "oa-root"}, 201, &org)
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "运行控制部", "parent_id": "oa-root", "sort_order": 2}, 201, &ops)
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "乘务部", "parent_id": org.ID}, 201, &crew)
			env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "客舱(一)队*", "parent_id": crew.ID}, 201, &cabin)
			if ops.ParentID == nil || *ops.ParentID != org.ID || ops.SortOrder != 2 {
				t.Fatalf("unit created under the OA id of its parent reads back as %+v", ops)
			}
			var got directory.UnitView
			env.do(t, "GET", "/api/v1/orgunits/"+org.ID, nil, 200, &got)
			if len(got.Children) != 2 {
				t.Fatalf("the company lists %d children, want 2", len(got.Children))
			}

			env.do(t, "PATCH", "/api/v1/orgunits/"+ops.ID, map[string]any{"name": "运行控制中心"}, 200, &got)
			if got.Name != "运行控制中心" {
				t.Fatalf("rename: %+v", got)
			}
			var ce conflictErr
			env.do(t, "POST", "/api/v1/orgunits/"+crew.ID+"/move", map[string]any{"parent_id": cabin.ID}, 409, &ce)
			if ce.Error.Details.Field != "parent_id" || len(ce.Error.Details.Holders) < 2 {
				t.Fatalf("a move under its own child: %+v", ce)
			}
			env.do(t, "POST", "/api/v1/orgunits/"+crew.ID+"/move", map[string]any{"parent_id": crew.ID}, 409, nil)
			env.do(t, "POST", "/api/v1/orgunits/"+cabin.ID+"/move", map[string]any{"parent_id": ops.ID}, 200, &got)
			if *got.ParentID != ops.ID {
				t.Fatalf("move: %+v", got)
			}

			// A person, and a shared mailbox outside the OA.
			var wang, shared directory.User
			env.do(t, "POST", "/api/v1/users", map[string]any{
				"login": "WangWei", "display_name": "王伟", "oa_id": "oa-p1", "unit_id": cabin.ID,
				"mobile": "+86 130 2570 7419", "title": "乘务长", "quota_bytes": 1 << 30,
			}, 201, &wang)
			if wang.Account == nil || wang.Account.Address != "wangwei@egretair.example" ||
				wang.Mobile != "13025707419" || wang.MobileRaw != "+86 130 2570 7419" ||
				wang.Title != "乘务长" || wang.Account.QuotaBytes != 1<<30 {
				t.Fatalf("created user reads back as %+v / %+v", wang.Person, wang.Account)
			}
			env.do(t, "POST", "/api/v1/users", map[string]any{
				"kind": "shared", "login": "ops-desk", "display_name": "运行值班", "address": "OPS@egretair.example",
			}, 201, &shared)
			if shared.Kind != directory.PersonShared || shared.OAID != nil || shared.Account.Address != "ops@egretair.example" {
				t.Fatalf("shared mailbox reads back as %+v", shared)
			}
			env.do(t, "POST", "/api/v1/users", map[string]any{
				"kind": "service", "login": "robot", "display_name": "r", "oa_id": "x",
			}, 422, nil)

			// Conflicts: a login in other case or width, a taken address.
			for _, login := range []string{"wangwei", "ＷａｎｇＷｅｉ"} {
				env.do(t, "POST", "/api/v1/users", map[string]any{"login": login, "display_name": "x"}, 409, &ce)
				if ce.Error.Details.Field != "login" || ce.Error.Details.Holders[0].ID != wang.ID {
					t.Fatalf("login %q: %+v", login, ce)
				}
			}
			env.do(t, "POST", "/api/v1/users", map[string]any{"login": "li", "display_name": "x", "address": "ops@egretair.example"}, 409, &ce)
			if ce.Error.Details.Field != "address" {
				t.Fatalf("taken address: %+v", ce)
			}

			// Attributes, move, disable and enable.
			var u directory.User
			env.do(t, "PATCH", "/api/v1/users/"+wang.ID, map[string]any{
				"display_name": "王 伟", "mobile": "0086-139 0000 0001", "work_phone": "0592-1234567",
				"title": "主任乘务长", "quota_bytes": 2 << 30,
			}, 200, &u)
			if u.DisplayName != "王 伟" || u.Mobile != "13900000001" || u.WorkPhone != "0592-1234567" ||
				u.Title != "主任乘务长" || u.Account.QuotaBytes != 2<<30 {
				t.Fatalf("after change: %+v %+v", u.Person, u.Account)
			}
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/move", map[string]any{"unit_id": "oa-root"}, 200, &u)
			if *u.UnitID != org.ID {
				t.Fatalf("move to the unit of an OA id: %+v", u)
			}
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/disable", nil, 200, &u)
			if u.Account.Status != directory.AccountDisabled {
				t.Fatalf("disable: %+v", u.Account)
			}
			if _, err := env.store.LookupAddress(ctx, "wangwei@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("a disabled account still receives mail: %v", err)
			}
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/enable", map[string]any{}, 200, &u)
			if u.Account.Status != directory.AccountEnabled {
				t.Fatalf("enable: %+v", u.Account)
			}

			// Aliases and a change of address.
			var al directory.Alias
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/aliases", map[string]any{"address": "Wei.Wang@egretair.example"}, 201, &al)
			env.do(t, "POST", "/api/v1/users/"+shared.ID+"/aliases", map[string]any{"address": "wei.wang@egretair.example"}, 409, nil)
			env.do(t, "POST", "/api/v1/users/"+shared.ID+"/aliases", map[string]any{"address": "wangwei@egretair.example"}, 409, nil)
			env.do(t, "POST", "/api/v1/users", map[string]any{"login": "wei.wang", "display_name": "x"}, 409, &ce)
			if ce.Error.Details.Field != "login" || !strings.Contains(ce.Error.Message, "alias") {
				t.Fatalf("a login whose address is another's alias: %+v", ce)
			}
			m, err := env.store.LookupAddress(ctx, "wei.wang@EGRETAIR.example")
			if err != nil || m.ID != wang.Account.ID || m.Address != "wangwei@egretair.example" {
				t.Fatalf("mail to the alias: %+v, %v; want account %s", m, err, wang.Account.ID)
			}
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/address", map[string]any{"address": "w.wang@egretair.example"}, 200, &u)
			for _, a := range []string{"w.wang@egretair.example", "wangwei@egretair.example", "wei.wang@egretair.example"} {
				if m, err := env.store.LookupAddress(ctx, a); err != nil || m.ID != wang.Account.ID {
					t.Fatalf("after the change of address, mail to %s: %+v, %v", a, m, err)
				}
			}
			var aliases struct{ Aliases []directory.Alias }
			env.do(t, "GET", "/api/v1/users/"+wang.ID+"/aliases", nil, 200, &aliases)
			if len(aliases.Aliases) != 2 {
				t.Fatalf("aliases after the change: %+v", aliases)
			}
			env.do(t, "DELETE", "/api/v1/users/"+wang.ID+"/aliases/wei.wang@egretair.example", nil, 204, nil)
			env.do(t, "DELETE", "/api/v1/users/"+wang.ID+"/aliases/wei.wang@egretair.example", nil, 404, nil)
			if _, err := env.store.LookupAddress(ctx, "wei.wang@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("a removed alias still receives mail: %v", err)
			}

			// Units that hold something are not deleted; empty ones are.
			env.do(t, "DELETE", "/api/v1/orgunits/"+org.ID, nil, 409, &ce)
			var kinds []string
			for _, h := range ce.Error.Details.Holders {
				kinds = append(kinds, h.Kind+":"+h.ID)
			}
			if !slices.Contains(kinds, "person:"+wang.ID) || !slices.Contains(kinds, "unit:"+ops.ID) {
				t.Fatalf("refusal lists %v; want the person and the child unit", kinds)
			}
			env.do(t, "DELETE", "/api/v1/orgunits/"+crew.ID, nil, 204, nil)
			env.do(t, "GET", "/api/v1/orgunits/"+crew.ID, nil, 404, nil)

			// Deletion: no mail, no login, the address held; restore.
			if _, err := env.store.SetPassword(ctx, wang.Account.ID, "飞行安全第一 2026"); err != nil {
				t.Fatal(err)
			}
			env.do(t, "DELETE", "/api/v1/users/"+wang.ID+"?retention_days=10", nil, 200, &u)
			want := env.clock.Now().Add(10 * 24 * time.Hour)
			if u.Account.Status != directory.AccountDeleted || u.Account.PurgeAfter == nil || !u.Account.PurgeAfter.Equal(want) {
				t.Fatalf("deleted account: %+v, want purge at %s", u.Account, want)
			}
			if _, err := env.store.LookupAddress(ctx, "w.wang@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("a deleted account receives mail: %v", err)
			}
			if _, err := env.store.LookupAddress(ctx, "wangwei@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("a deleted account's alias receives mail: %v", err)
			}
			if _, err := env.store.Authenticate(ctx, "WangWei", "飞行安全第一 2026"); !errors.Is(err, directory.ErrBadCredentials) {
				t.Fatalf("a deleted account logs in: %v", err)
			}
			env.do(t, "POST", "/api/v1/users", map[string]any{"login": "w.wang", "display_name": "x"}, 409, &ce)
			if !strings.Contains(ce.Error.Message, "retention") {
				t.Fatalf("the address of a deleted account was offered: %+v", ce)
			}
			env.do(t, "POST", "/api/v1/users/"+shared.ID+"/aliases", map[string]any{"address": "wangwei@egretair.example"}, 409, nil)
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/enable", nil, 409, nil)
			env.clock.Advance(9 * 24 * time.Hour)
			if ids, err := env.life.PurgeExpired(ctx, env.clock.Now()); err != nil || len(ids) != 0 {
				t.Fatalf("purge within retention: %v, %v", ids, err)
			}
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/restore", nil, 200, &u)
			if u.Account.Status != directory.AccountEnabled || u.Account.PurgeAfter != nil {
				t.Fatalf("restored: %+v", u.Account)
			}
			if m, err := env.store.LookupAddress(ctx, "w.wang@egretair.example"); err != nil || m.ID != wang.Account.ID {
				t.Fatalf("restored account's mail: %v", err)
			}
			if _, err := env.store.Authenticate(ctx, "wangwei", "飞行安全第一 2026"); err != nil {
				t.Fatalf("restored account cannot log in: %v", err)
			}

			// Deleted again, with the default retention, and purged once
			// it ends: rows gone, mailbox removed, the address free.
			env.do(t, "DELETE", "/api/v1/users/"+wang.ID, nil, 200, &u)
			env.clock.Advance(30*24*time.Hour - time.Second)
			if ids, _ := env.life.PurgeExpired(ctx, env.clock.Now()); len(ids) != 0 {
				t.Fatalf("purged a second early: %v", ids)
			}
			env.clock.Advance(time.Second)
			env.do(t, "POST", "/api/v1/users/"+wang.ID+"/restore", nil, 409, nil)
			ids, err := env.life.PurgeExpired(ctx, env.clock.Now())
			if err != nil || len(ids) != 1 || ids[0] != wang.Account.ID {
				t.Fatalf("purge: %v, %v", ids, err)
			}
			if len(env.removed) != 1 || env.removed[0] != wang.Account.ID {
				t.Fatalf("mailboxes removed: %v", env.removed)
			}
			env.do(t, "GET", "/api/v1/users/"+wang.ID, nil, 404, nil)
			var again directory.User
			env.do(t, "POST", "/api/v1/users", map[string]any{"login": "wangwei", "display_name": "新王伟", "address": "w.wang@egretair.example"}, 201, &again)
			if again.ID == wang.ID || again.Account.ID == wang.Account.ID {
				t.Fatalf("an id was reused: %+v", again)
			}

			// The audit trail: who, when, before and after.
			var page struct {
				Entries []directory.AuditEntry
				Next    int64
			}
			env.do(t, "GET", "/api/v1/audit?entity_id="+wang.Account.ID, nil, 200, &page)
			var ops2 []string
			for _, e := range page.Entries {
				ops2 = append(ops2, e.Op)
				if e.Actor != "api:admin" && e.Op != directory.OpPurge && e.Op != directory.OpUpdate {
					t.Errorf("change %d by %q, want api:admin", e.Seq, e.Actor)
				}
				if e.Op != directory.OpCreate && string(e.Before) == "null" {
					t.Errorf("change %d (%s) has no before", e.Seq, e.Op)
				}
			}
			for _, op := range []string{"create", "update", "disable", "enable", "delete", "restore", "purge"} {
				if !slices.Contains(ops2, op) {
					t.Errorf("the account's audit trail %v lacks %s", ops2, op)
				}
			}
		})
	}
}
