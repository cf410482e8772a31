package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
)

// egretOA runs egret with args and answers what it printed.
func egretOA(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, stdin: strings.NewReader("")}
	root := a.root()
	root.SetArgs(args)
	err := root.ExecuteContext(directory.WithActor(context.Background(), "cli:tester"))
	return out.String(), err
}

func TestOACommandsApplyHoldApproveAndPull(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("EGRET_NODE_DATA_DIR", dir)
	t.Setenv("EGRET_DATABASE_URL", "sqlite:"+filepath.Join(dir, "egret.db"))
	t.Setenv("EGRET_LOG_LEVEL", "error")
	t.Setenv("EGRET_OA_DISABLE_THRESHOLD", "2")

	small, err := os.ReadFile("../../testdata/oa/ekp-small.json")
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Message string }
	json.Unmarshal(small, &env)
	var els []map[string]any
	json.Unmarshal([]byte(env.Message), &els)
	write := func(name string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	if _, err := egretOA(t, "oa", "import", "../../testdata/oa/ekp-small.json"); err != nil {
		t.Fatal(err)
	}

	var people []map[string]any
	for _, el := range els {
		if el["type"] == "person" && el["isAvailable"] != false {
			people = append(people, el)
		}
	}
	// Two leave: at the threshold, applied.
	var page []map[string]any
	for _, p := range people[:2] {
		q := map[string]any{}
		for k, v := range p {
			q[k] = v
		}
		q["isAvailable"], q["alterTime"] = false, "2026-12-01 08:00:00.000"
		page = append(page, q)
	}
	pagePath := write("page.json", page)
	var rep struct {
		DryRun bool `json:"dry_run"`
		Held   bool `json:"held"`
		Person struct {
			Disabled int `json:"disabled"`
		} `json:"person"`
		PlanID string `json:"plan_id"`
	}
	out, err := egretOA(t, "oa", "apply", "--dry-run", pagePath)
	if json.Unmarshal([]byte(out), &rep); err != nil || !rep.DryRun || rep.Person.Disabled != 2 {
		t.Fatalf("dry run: %v %s", err, out)
	}
	out, err = egretOA(t, "oa", "apply", pagePath)
	if json.Unmarshal([]byte(out), &rep); err != nil || rep.DryRun || rep.Person.Disabled != 2 {
		t.Fatalf("apply: %v %s", err, out)
	}

	// The export without three more people would disable three: held.
	var less []map[string]any
	drop := map[any]bool{people[2]["id"]: true, people[3]["id"]: true, people[4]["id"]: true}
	for _, el := range els {
		if !drop[el["id"]] {
			less = append(less, el)
		}
	}
	for _, p := range page {
		for i, el := range less {
			if el["id"] == p["id"] {
				less[i] = p
			}
		}
	}
	out, err = egretOA(t, "oa", "import", write("less.json", less))
	json.Unmarshal([]byte(out), &rep)
	if err == nil || !rep.Held || !strings.Contains(err.Error(), "egret oa approve "+rep.PlanID) {
		t.Fatalf("held import: %v %s", err, out)
	}
	list, err := egretOA(t, "oa", "plans", "--status", "held")
	if err != nil || !strings.Contains(list, rep.PlanID) || !strings.Contains(list, "snapshot") {
		t.Fatalf("plans: %v\n%s", err, list)
	}
	shown, err := egretOA(t, "oa", "plans", "show", rep.PlanID)
	var plan struct {
		Report struct {
			DisabledAccounts []struct{ Address string } `json:"disabled_accounts"`
		} `json:"report"`
	}
	if json.Unmarshal([]byte(shown), &plan); err != nil || len(plan.Report.DisabledAccounts) != 3 {
		t.Fatalf("show: %v %s", err, shown)
	}
	out, err = egretOA(t, "oa", "approve", rep.PlanID)
	if json.Unmarshal([]byte(out), &rep); err != nil || rep.Person.Disabled != 3 {
		t.Fatalf("approve: %v %s", err, out)
	}
	if _, err := egretOA(t, "oa", "approve", rep.PlanID); err == nil || !strings.Contains(err.Error(), "applied") {
		t.Errorf("approving twice: %v", err)
	}

	// Pulling: first without a URL, then from a stand-in that has one
	// person back.
	if _, err := egretOA(t, "oa", "pull"); err == nil || !strings.Contains(err.Error(), "ekp_url") {
		t.Errorf("pull without a URL: %v", err)
	}
	back := map[string]any{}
	for k, v := range people[2] {
		back[k] = v
	}
	back["alterTime"] = "2026-12-02 08:00:00.000"
	msg, _ := json.Marshal([]any{back})
	ekp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ BeginTimeStamp string }
		json.NewDecoder(r.Body).Decode(&req)
		m := string(msg)
		if req.BeginTimeStamp > "2026-12-02 08:00:00.000" {
			m = "[]"
		}
		json.NewEncoder(w).Encode(map[string]any{"returnState": 2, "message": m})
	}))
	defer ekp.Close()
	t.Setenv("EGRET_OA_EKP_URL", ekp.URL)
	out, err = egretOA(t, "oa", "pull")
	var pr struct {
		Cursor string `json:"cursor"`
		Report struct {
			Person struct{ Enabled int } `json:"person"`
		} `json:"report"`
	}
	if json.Unmarshal([]byte(out), &pr); err != nil || pr.Report.Person.Enabled != 1 || pr.Cursor != "2026-12-02 07:59:58.000" {
		t.Fatalf("pull: %v %s", err, out)
	}
}
