package oasync_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
)

// BenchmarkImportFull imports the full export of 11,000 people: "first"
// into an empty directory, "again" into one that holds it already.
func BenchmarkImportFull(b *testing.B) {
	input := fixture(b, "ekp-full.json.gz")
	for _, dialect := range dirtest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			b.Run("first", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					s := dirtest.Open(b, dialect)
					b.StartTimer()
					rep := mustImport(b, s, input, false)
					b.StopTimer()
					if rep.Person.Created != 11000 {
						b.Fatalf("created %d people", rep.Person.Created)
					}
					s.Close()
					b.StartTimer()
				}
			})
			b.Run("again", func(b *testing.B) {
				s := dirtest.Open(b, dialect)
				mustImport(b, s, input, false)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if rep := mustImport(b, s, input, false); rep.Person.Unchanged != 11000 {
						b.Fatalf("re-import changed people: %+v", rep.Person)
					}
				}
			})
		})
	}
}

// BenchmarkApplyChanges applies pages of 1,000 changed people (a new
// mobile number and a transfer each, in ascending alterTime) to a
// directory that holds the full export, and reports pages and changes a
// second.
func BenchmarkApplyChanges(b *testing.B) {
	full := fixture(b, "ekp-full.json.gz")
	_, raws := elementsOf(b, full)
	var people, depts []map[string]any
	for _, r := range raws {
		var el map[string]any
		json.Unmarshal(r, &el)
		switch {
		case el["type"] == "person" && el["isAvailable"] == true:
			people = append(people, el)
		case el["type"] == "dept":
			depts = append(depts, el)
		}
	}
	const perPage = 1000
	page := func(n int) []byte {
		els := make([]obj, perPage)
		for i := range els {
			el := obj{}
			for k, v := range people[(n*perPage+i)%len(people)] {
				el[k] = v
			}
			el["mobileNo"] = fmt.Sprintf("139%08d", n*perPage+i)
			el["parent"] = depts[(n+i)%len(depts)]["id"]
			el["alterTime"] = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).
				Add(time.Duration(n*perPage+i) * time.Millisecond).Format("2006-01-02 15:04:05.000")
			els[i] = el
		}
		return envelope(b, els)
	}
	for _, dialect := range dirtest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			s := dirtest.Open(b, dialect)
			mustImport(b, s, full, false)
			n := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				input := page(n)
				n++
				b.StartTimer()
				rep := mustChanges(b, s, input, false)
				if rep.Person.Updated != perPage {
					b.Fatalf("page %d updated %d people", n, rep.Person.Updated)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pages/s")
			b.ReportMetric(float64(n*perPage)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}
