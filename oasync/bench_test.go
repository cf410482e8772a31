package oasync_test

import (
	"testing"

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
