package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/ldapmirror"
	"github.com/egretair/egret/directory/ldapmirror/ldaptest"
)

// BenchmarkLDAPInitialMirror times the first mirror of the full OA
// export (11,000 people, 540 units) into an empty slapd, and ldapadd
// loading the same tree, exported by egret, into another empty slapd
// with the same configuration, in one run; it reports both and their
// ratio.
//
//	go test -run '^$' -bench LDAPInitialMirror -benchtime 1x ./integration/
func BenchmarkLDAPInitialMirror(b *testing.B) {
	r := newLDAPRig(b)
	r.importFile(b, filepath.Join(repoRoot, "testdata/oa/ekp-full.json.gz"), false)
	ldif := filepath.Join(b.TempDir(), "tree.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		b.Fatal(err)
	}
	n, err := ldapmirror.ExportLDIF(context.Background(), r.store, ldaptest.Base, f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	ldapadd := ldaptest.Tool(b, "ldapadd")

	var mirrorTotal, addTotal time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := ldaptest.Start(b)
		m := &ldapmirror.Mirror{Store: r.store, Config: ldapmirror.Config{URL: srv.URL,
			BindDN: ldaptest.RootDN, Password: ldaptest.RootPassword, BaseDN: ldaptest.Base}}
		b.StartTimer()
		start := time.Now()
		rep, err := m.Reconcile(context.Background(), false)
		mirrorTotal += time.Since(start)
		b.StopTimer()
		if err != nil || len(rep.Added) != n-1 {
			b.Fatalf("mirror added %d of %d: %v", len(rep.Added), n-1, err)
		}
		srv.Stop()

		srv2 := ldaptest.Start(b)
		start = time.Now()
		out, err := exec.Command(ldapadd, "-x", "-H", srv2.URL, "-D", ldaptest.RootDN,
			"-w", ldaptest.RootPassword, "-f", ldif).CombinedOutput()
		addTotal += time.Since(start)
		if err != nil {
			b.Fatalf("ldapadd: %v\n%.2000s", err, out)
		}
		srv2.Stop()
	}
	b.ReportMetric(mirrorTotal.Seconds()/float64(b.N), "mirror-s")
	b.ReportMetric(addTotal.Seconds()/float64(b.N), "ldapadd-s")
	b.ReportMetric(mirrorTotal.Seconds()/addTotal.Seconds(), "ratio")
	b.ReportMetric(float64(n), "entries")
}

// BenchmarkLDAPChangeLatency measures, over 1,000 changes, the time
// from a lifecycle change being acknowledged (its transaction committed)
// to its being visible in LDAP, with the mirror running as serve runs
// it, and reports the median and the 99th percentile.
//
//	go test -run '^$' -bench LDAPChangeLatency -benchtime 1x ./integration/
func BenchmarkLDAPChangeLatency(b *testing.B) {
	r := newLDAPRig(b)
	r.importFile(b, filepath.Join(repoRoot, "testdata/oa/ekp-full.json.gz"), false)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if _, err := r.mirror.Step(ctx); err != nil {
		b.Fatal(err)
	}
	go r.mirror.Run(ctx)

	users, _, err := r.store.ListUsers(ctx, directory.UserFilter{Status: "enabled", Limit: 1000})
	if err != nil || len(users) != 1000 {
		b.Fatalf("users: %d, %v", len(users), err)
	}
	conn, err := ldap.DialURL(r.srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(ldaptest.RootDN, ldaptest.RootPassword); err != nil {
		b.Fatal(err)
	}
	life := &directory.Lifecycle{Store: r.store, Domain: ldapDomain}
	actx := directory.WithActor(ctx, "bench")

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, u := range users {
			name := fmt.Sprintf("%s %d-%d", u.DisplayName, i, k)
			if _, err := life.UpdateUser(actx, u.ID, directory.UserChange{DisplayName: &name}); err != nil {
				b.Fatal(err)
			}
			acked := time.Now()
			filter := "(&(uniqueIdentifier=" + ldap.EscapeFilter(u.ID) + ")(cn=" + ldap.EscapeFilter(name) + "))"
			for {
				res, err := conn.Search(ldap.NewSearchRequest(ldaptest.Base, ldap.ScopeWholeSubtree,
					ldap.NeverDerefAliases, 0, 0, false, filter, []string{"1.1"}, nil))
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Entries) == 1 {
					break
				}
				if time.Since(acked) > 30*time.Second {
					b.Fatalf("change to %s not in LDAP after 30 s", u.Login)
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(acked))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(len(lat)), "changes")
}
