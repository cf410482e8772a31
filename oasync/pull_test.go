package oasync_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

// ekpStandIn serves rows as EKP's export service does: at most count
// rows whose alterTime is at or after beginTimeStamp, in alterTime order.
type ekpStandIn struct {
	mu   sync.Mutex
	rows []standInRow
	// failAt makes the request of this number (from 1) fail once.
	failAt   int
	requests int
	// splits counts pages that ended inside a run of equal alterTime.
	splits int
	token  string
}

type standInRow struct {
	alter string
	raw   json.RawMessage
}

func (e *ekpStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	if e.requests == e.failAt {
		http.Error(w, "database busy", http.StatusBadGateway)
		return
	}
	if e.token != "" && r.Header.Get("Authorization") != "Bearer "+e.token {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	var req struct {
		ReturnOrgType  string `json:"returnOrgType"`
		Count          int    `json:"count"`
		BeginTimeStamp string `json:"beginTimeStamp"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Count <= 0 ||
		!strings.Contains(req.ReturnOrgType, `"person"`) {
		json.NewEncoder(w).Encode(map[string]any{"returnState": 1, "message": "bad request"})
		return
	}
	var page []json.RawMessage
	i := 0
	for i < len(e.rows) && e.rows[i].alter < req.BeginTimeStamp {
		i++
	}
	for ; i < len(e.rows) && len(page) < req.Count; i++ {
		page = append(page, e.rows[i].raw)
	}
	if i > 0 && i < len(e.rows) && len(page) == req.Count && e.rows[i].alter == e.rows[i-1].alter {
		e.splits++
	}
	msg, _ := json.Marshal(page)
	json.NewEncoder(w).Encode(map[string]any{
		"returnState": 2, "message": string(msg), "count": len(page),
		"timeStamp": "2026-11-30 16:00:00.000",
	})
}

// bulkTransfer is a page of changes in which 40 people move to one
// department in one batch, all with one alterTime, as a re-organisation
// in EKP writes them.
func bulkTransfer(t testing.TB) []byte {
	t.Helper()
	_, raws := elementsOf(t, fixture(t, "ekp-full.json.gz"))
	var dept string
	var out []map[string]any
	for _, r := range raws {
		var el map[string]any
		json.Unmarshal(r, &el)
		switch {
		case el["type"] == "dept" && dept == "":
			dept = el["id"].(string)
		case el["type"] == "person" && el["isAvailable"] == true && len(out) < 40 && dept != "":
			el["parent"] = dept
			el["alterTime"] = "2026-11-30 15:00:00.000"
			out = append(out, el)
		}
	}
	return envelope(t, out)
}

// standInRows answers the latest version of every element of the inputs,
// in alterTime order: what EKP's table holds after them.
func standInRows(t testing.TB, inputs ...[]byte) []standInRow {
	t.Helper()
	latest := map[string]standInRow{}
	for _, in := range inputs {
		ids, raws := elementsOf(t, in)
		for i, id := range ids {
			var el struct {
				AlterTime string `json:"alterTime"`
			}
			json.Unmarshal(raws[i], &el)
			latest[id] = standInRow{el.AlterTime, raws[i]}
		}
	}
	rows := make([]standInRow, 0, len(latest))
	for _, r := range latest {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b standInRow) int {
		return cmp.Or(strings.Compare(a.alter, b.alter), bytes.Compare(a.raw, b.raw))
	})
	return rows
}

func TestThePullConnectorReachesThePushedState(t *testing.T) {
	full := fixture(t, "ekp-full.json.gz")
	inputs := [][]byte{full}
	for _, name := range pageNames {
		inputs = append(inputs, fixture(t, name))
	}
	inputs = append(inputs, bulkTransfer(t))
	rows := standInRows(t, inputs...)

	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			pushed := dirtest.Open(t, dialect)
			mustImport(t, pushed, full, false)
			for _, in := range inputs[1:] {
				mustChanges(t, pushed, in, false)
			}
			want := oaDump(t, pushed)

			ekp := &ekpStandIn{rows: rows, failAt: 7, token: "ekp-secret"}
			srv := httptest.NewServer(ekp)
			defer srv.Close()
			s := dirtest.Open(t, dialect)
			puller := &oasync.Puller{Importer: importer(s), URL: srv.URL, Token: "ekp-secret", PageSize: 25}
			ctx := context.Background()

			// The seventh request fails: nothing is applied, and the
			// cursor stays where it was.
			before := fingerprint(t, s)
			if _, err := puller.Run(ctx); err == nil || !strings.Contains(err.Error(), "page 7") {
				t.Fatalf("got %v, want the failed page named", err)
			}
			if cur, _ := puller.Cursor(ctx); cur != "" {
				t.Errorf("cursor moved to %q after a failed run", cur)
			}
			if after := fingerprint(t, s); after != before {
				t.Fatalf("a failed run wrote to the directory")
			}

			pr, err := puller.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pr.Elements != len(rows) || pr.Report == nil || pr.Report.Person.Created != 11057 {
				t.Errorf("run: %d elements of %d, report %+v", pr.Elements, len(rows), pr.Report)
			}
			if ekp.splits == 0 {
				t.Errorf("no page ended inside a run of equal alterTime; the test proves nothing")
			}
			// The last row is the bulk transfer's; the cursor is two
			// seconds before it.
			if cur, _ := puller.Cursor(ctx); cur != "2026-11-30 14:59:58.000" || pr.Cursor != cur {
				t.Errorf("cursor %q (report %q)", cur, pr.Cursor)
			}
			sameLines(t, oaDump(t, s), want)
			var actor string
			s.DB().Model(&directory.Change{}).Limit(1).Pluck("actor", &actor)
			if !strings.HasPrefix(actor, "oa:pull@") {
				t.Errorf("actor %q", actor)
			}

			// The next run fetches the overlap again and changes nothing.
			before = fingerprint(t, s)
			pr, err = puller.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pr.Elements != 40 || changed(pr.Report) {
				t.Errorf("second run: %d elements, %+v", pr.Elements, pr.Report)
			}
			if after := fingerprint(t, s); after != before {
				t.Errorf("a run over known rows wrote to the directory")
			}
		})
	}
}

func TestAPullThatDisablesTooManyIsHeldAndKeepsItsCursor(t *testing.T) {
	s := dirtest.Open(t, "sqlite")
	mustImport(t, s, envelope(t, base()), false)
	var left []byte
	{
		var els []obj
		for _, id := range []string{"u-wang", "u-li", "u-zhao"} {
			el := find(base(), id)
			el["isAvailable"] = false
			el["alterTime"] = "2026-12-05 08:00:00.000"
			els = append(els, el)
		}
		left = envelope(t, els)
	}
	srv := httptest.NewServer(&ekpStandIn{rows: standInRows(t, left)})
	defer srv.Close()
	imp := importer(s)
	imp.DisableThreshold = 2
	puller := &oasync.Puller{Importer: imp, URL: srv.URL}
	ctx := context.Background()
	pr, err := puller.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Report == nil || !pr.Report.Held || pr.Cursor != "" {
		t.Fatalf("got %+v", pr)
	}
	if cur, _ := puller.Cursor(ctx); cur != "" {
		t.Errorf("a held run moved the cursor to %q", cur)
	}
	if _, err := imp.Approve(ctx, pr.Report.PlanID, oasync.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, &directory.Account{}, "status = ?", directory.AccountDisabled); n != 3 {
		t.Errorf("disabled accounts after approval: %d", n)
	}
	pr, err = puller.Run(ctx)
	if err != nil || pr.Report.Held || changed(pr.Report) || pr.Cursor != "2026-12-05 07:59:58.000" {
		t.Errorf("after approval: %+v, %v", pr, err)
	}
}
