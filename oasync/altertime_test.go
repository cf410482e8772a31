package oasync_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

// clockAt answers an importer whose clock stands at now.
func clockAt(s *directory.Store, now string) *oasync.Importer {
	imp := importer(s)
	at, err := time.Parse(time.DateTime, now)
	if err != nil {
		panic(err)
	}
	imp.Now = func() time.Time { return at }
	return imp
}

func changesAt(t *testing.T, imp *oasync.Importer, els ...obj) *oasync.Report {
	t.Helper()
	rep, err := imp.ImportChanges(context.Background(), bytes.NewReader(envelope(t, els)), oasync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func li(alter string, available bool) obj {
	el := personEl("u-li", "李娜", "d-fly", "lina", "Lina@163.example", "13025707418")
	el["alterTime"] = alter
	el["isAvailable"] = available
	return el
}

func TestAnUnreadableAlterTimeKeepsTheOneHeld(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			imp := clockAt(s, "2026-12-01 12:00:00")
			mustImport(t, s, envelope(t, base()), false)
			held := personByOA(t, s, "u-li").OAAlterTime

			// Li leaves, in an element whose alterTime has a zone EKP
			// does not write: applied, with a warning.
			rep := changesAt(t, imp, li("2026-12-01T10:00:00+08:00", false))
			if rep.Person.Disabled != 1 || !slices.ContainsFunc(rep.Warnings, func(w oasync.Warning) bool {
				return w.ID == "u-li" && strings.Contains(w.Message, "not a time")
			}) {
				t.Fatalf("got %+v, warnings %+v", rep.Person, rep.Warnings)
			}
			if u := personByOA(t, s, "u-li"); u.OAAlterTime != held {
				t.Errorf("alter time %q, want the one held, %q", u.OAAlterTime, held)
			}

			// A late page older than what egret held before stays stale.
			rep = changesAt(t, imp, li("2026-11-30 08:00:00.000", true))
			u := personByOA(t, s, "u-li")
			if rep.Stale != 1 || u.Status != directory.PersonLeft || u.Account.Status != directory.AccountDisabled {
				t.Errorf("a late page rolled the leave back: stale %d, %s, account %s", rep.Stale, u.Status, u.Account.Status)
			}
		})
	}
}

func TestAnAlterTimeFarAheadOfTheClockIsNotKept(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			imp := clockAt(s, "2026-12-01 12:00:00")
			mustImport(t, s, envelope(t, base()), false)
			held := personByOA(t, s, "u-li").OAAlterTime

			// EKP's local time, eight hours ahead of UTC, is not far.
			changesAt(t, imp, li("2026-12-01 20:00:00.000", true))
			if u := personByOA(t, s, "u-li"); u.OAAlterTime != "2026-12-01 20:00:00.000" {
				t.Fatalf("a local time was not kept: %q", u.OAAlterTime)
			}
			s.DB().Model(&directory.Person{}).Where("oa_id = ?", "u-li").Update("oa_alter_time", held)

			// A mistyped year: the rename applies, the time is not kept.
			typo := li("2062-12-01 09:00:00.000", true)
			typo["name"] = "李娜娜"
			rep := changesAt(t, imp, typo)
			if !slices.ContainsFunc(rep.Warnings, func(w oasync.Warning) bool {
				return w.ID == "u-li" && strings.Contains(w.Message, "ahead of this server's clock")
			}) {
				t.Errorf("no warning names the element: %+v", rep.Warnings)
			}
			if u := personByOA(t, s, "u-li"); u.DisplayName != "李娜娜" || u.OAAlterTime != held {
				t.Fatalf("got %q at %q, want the rename at %q", u.DisplayName, u.OAAlterTime, held)
			}

			// Her leaving the next day is not taken for stale.
			rep = changesAt(t, imp, li("2026-12-01 11:00:00.000", false))
			if u := personByOA(t, s, "u-li"); rep.Stale != 0 || u.Status != directory.PersonLeft {
				t.Errorf("the leave was dropped: stale %d, status %s", rep.Stale, u.Status)
			}

			// A record that holds such a time from before proves
			// nothing either.
			s.DB().Model(&directory.Person{}).Where("oa_id = ?", "u-li").Update("oa_alter_time", "2099-01-01 00:00:00.000")
			rep = changesAt(t, imp, li("2026-12-01 11:30:00.000", true))
			if u := personByOA(t, s, "u-li"); rep.Stale != 0 || u.Status != directory.PersonActive {
				t.Errorf("the return was dropped: stale %d, status %s", rep.Stale, u.Status)
			}
		})
	}
}

func TestAPulledRowFarAheadOfTheClockDoesNotMoveTheCursorPastTheRest(t *testing.T) {
	s := dirtest.Open(t, "sqlite")
	mustImport(t, s, envelope(t, base()), false)
	imp := clockAt(s, "2026-12-01 12:00:00")
	ekp := &ekpStandIn{rows: []standInRow{}}
	srv := httptest.NewServer(ekp)
	defer srv.Close()
	puller := &oasync.Puller{Importer: imp, URL: srv.URL}
	ctx := context.Background()

	add := func(el obj) {
		ekp.mu.Lock()
		ekp.rows = append(ekp.rows, standInRows(t, envelope(t, []obj{el}))...)
		ekp.mu.Unlock()
	}
	add(li("2026-12-01 10:00:00.000", true))
	typo := find(base(), "u-zhao")
	typo["alterTime"] = "2062-12-01 09:00:00.000"
	add(typo)
	pr, err := puller.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Cursor != "2026-12-01 09:59:58.000" {
		t.Fatalf("cursor %q, want two seconds before the last row not ahead of the clock", pr.Cursor)
	}

	// Li leaves later; the next run still fetches it.
	left := standInRows(t, envelope(t, []obj{li("2026-12-01 11:00:00.000", false)}))
	ekp.mu.Lock()
	ekp.rows = append(left, ekp.rows[1:]...)
	ekp.mu.Unlock()
	if _, err := puller.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if u := personByOA(t, s, "u-li"); u.Status != directory.PersonLeft {
		t.Errorf("the pull missed a row after one dated ahead of the clock: %s", u.Status)
	}
}
