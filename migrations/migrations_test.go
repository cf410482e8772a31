package migrations_test

import (
	"context"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/migrations"
)

// files answers the migration file names of one dialect.
func files(t *testing.T, d migrations.Dialect) []string {
	t.Helper()
	fsys, err := migrations.FS(d)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestBothDialectsHaveTheSameHistory(t *testing.T) {
	mysql, sqlite := files(t, migrations.MySQL), files(t, migrations.SQLite)
	if len(mysql) == 0 || !slices.Equal(mysql, sqlite) {
		t.Fatalf("mysql has %v, sqlite has %v: want the same numbered files in each", mysql, sqlite)
	}
	for _, name := range mysql {
		if !strings.HasSuffix(path.Base(name), ".sql") || len(name) < 7 || strings.Trim(name[:5], "0123456789") != "" {
			t.Errorf("%s: want NNNNN_name.sql", name)
		}
	}
}

func TestUpIsCompleteAndRepeatable(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s, err := directory.Open(ctx, dirtest.URL(t, dialect))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Open applied everything; a second run changes nothing.
			v, err := s.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			list, err := s.Migrations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			last := list[len(list)-1]
			if v != last.Version {
				t.Fatalf("database at version %d, newest migration is %d", v, last.Version)
			}
			for _, m := range list {
				if !m.Applied {
					t.Errorf("migration %d (%s) not applied", m.Version, m.Name)
				}
			}
		})
	}
}
