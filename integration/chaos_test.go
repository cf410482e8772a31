package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Size and pace of the chaos test: about three messages and five
// sign-ins a second on two cores, a kill every quarter minute.
const (
	chaosAccounts   = 24
	chaosSendEvery  = 300 * time.Millisecond
	chaosProbeEvery = 200 * time.Millisecond
	chaosWriteEvery = 500 * time.Millisecond
	// chaosWarmup runs the load before the first kill.
	chaosWarmup = 5 * time.Second
	// chaosDown is how long a killed front or back member stays away.
	chaosDown = 4 * time.Second
	// chaosDBDown is how long the database primary stays away: longer
	// than sign-ins may fail, so that they must be served from the
	// replica, and long enough for many OA changes to meet its absence.
	chaosDBDown = 15 * time.Second
	// chaosSettle runs the load after a restart before the next kill.
	chaosSettle = 11 * time.Second
	// chaosMaxOutage is the longest sign-ins, or mail through one
	// front or the other, may fail after one failure.
	chaosMaxOutage = 10 * time.Second
	// chaosDrain bounds the wait for the queues to empty at the end.
	chaosDrain = 90 * time.Second
	// chaosBudget is more than the test needs on two busy cores; a
	// shorter -timeout fails it at once rather than in the middle.
	chaosBudget = 5 * time.Minute
)

// chaosFailure is one component killed, and the stretch of the run
// that belongs to it: from the kill to the next one.
type chaosFailure struct {
	what     string
	from, to time.Time
	// sentFrom and sentTo are where its sends start and end in the
	// load's send order.
	sentFrom, sentTo int
}

// TestChaosKillsEachComponentInTurn runs the airline's layout with no
// single point of failure, two fronts, an active and a standby back and
// a MariaDB primary with a replica, under a steady load of SMTP and
// IMAP through both fronts, and kills a front, the active back and the
// database primary with SIGKILL, one after the other, each brought back
// before the next. Every message answered 250 must be delivered exactly
// once; sign-ins, and 250s from one front or the other, may stop for at
// most ten seconds after each kill; OA changes sent while the primary
// is away are applied or refused with 503 and Retry-After, and a
// refused one applies when sent again after.
func TestChaosKillsEachComponentInTurn(t *testing.T) {
	if d, ok := t.Deadline(); ok && time.Until(d) < chaosBudget {
		t.Fatalf("the chaos test needs up to %v; go test -timeout leaves %v",
			chaosBudget, time.Until(d).Round(time.Second))
	}
	began := time.Now()
	r := startChaosRig(t)
	t.Logf("rig ready in %v", time.Since(began).Round(time.Millisecond))

	// The OA's tree, then the people the load writes to and signs in
	// as, created through the first front.
	snap := loadSnapshot(t, filepath.Join(repoRoot, "testdata/oa/ekp-small.json"))
	importSnapshot(t, r.fronts[0], viaAPI, snap)
	var root string
	for _, e := range snap.Elements {
		if e.Type == "org" {
			root = e.ID
		}
	}
	var accounts []chaosAccount
	for i := range chaosAccounts {
		a := chaosAccount{login: fmt.Sprintf("chaos%02d", i+1), password: randomString(t, 20)}
		a.address = createUser(t, r.fronts[i%2], a.login, a.password, 0)
		accounts = append(accounts, a)
	}

	ld := startChaosLoad(accounts, r.fronts, chaosSendEvery, chaosProbeEvery)
	t.Cleanup(ld.stopLoad)
	time.Sleep(chaosWarmup)
	if ld.mark() == 0 || ld.ackedBetween(0, ld.mark()) == 0 {
		t.Fatalf("no message was acknowledged in the warm-up: %s", tally(ld.refusals))
	}

	var failures []*chaosFailure
	begin := func(what string) {
		now, m := time.Now(), ld.mark()
		if len(failures) > 0 {
			last := failures[len(failures)-1]
			last.to, last.sentTo = now, m
		}
		failures = append(failures, &chaosFailure{what: what, from: now, sentFrom: m})
	}

	// A front dies; the load turns to the other one.
	begin("front f1")
	kill(t, r.fronts[0])
	t.Logf("%v: front f1 killed", time.Since(began).Round(time.Millisecond))
	time.Sleep(chaosDown)
	r.fronts[0] = relaunch(t, r.fronts[0])
	time.Sleep(chaosSettle)

	// The active back dies; its standby takes over.
	active := r.activeBack(t, 5*time.Second)
	begin("active back")
	kill(t, r.backs[active])
	killed := time.Now()
	t.Logf("%v: active back member %d killed", time.Since(began).Round(time.Millisecond), active+1)
	r.activeBack(t, 2*chaosMaxOutage)
	t.Logf("the standby holds the lease %v after the kill", time.Since(killed).Round(time.Millisecond))
	time.Sleep(chaosDown)
	r.backs[active] = relaunch(t, r.backs[active])
	time.Sleep(chaosSettle)

	// The database primary dies while OA changes come in; the nodes go
	// on reading the replica.
	w := startChaosWriter(r.fronts, root, chaosWriteEvery)
	t.Cleanup(w.stopLoad)
	time.Sleep(2 * time.Second)
	begin("database primary")
	r.db.KillPrimary(t)
	dbDown := time.Now()
	t.Logf("%v: database primary killed", time.Since(began).Round(time.Millisecond))
	time.Sleep(chaosDBDown)
	r.db.StartPrimary(t)
	dbUp := time.Now()
	t.Logf("%v: database primary back", time.Since(began).Round(time.Millisecond))
	time.Sleep(chaosSettle)
	w.stopLoad()
	last := failures[len(failures)-1]
	last.to, last.sentTo = time.Now(), ld.mark()
	ld.stopLoad()
	loadTime := time.Since(began)

	oa := w.check(t, r.fronts[0], dbDown, dbUp)
	mail := ld.account(t, r.fronts)

	// Sign-ins and mail went on through each failure.
	var outages []string
	for _, f := range failures {
		login, mail := ld.loginOutage(f.from, f.to), ld.mailOutage(f.from, f.to)
		t.Logf("%s: longest stretch without a sign-in %v, without a 250 %v; "+
			"%d of %d sends answered 250 until the next kill", f.what, login.Round(time.Millisecond),
			mail.Round(time.Millisecond), ld.ackedBetween(f.sentFrom, f.sentTo), f.sentTo-f.sentFrom)
		outages = append(outages, fmt.Sprintf("%s %v", f.what, login.Round(100*time.Millisecond)))
		if login > chaosMaxOutage {
			t.Errorf("after the kill of the %s, sign-ins failed for %v, more than %v",
				f.what, login.Round(time.Millisecond), chaosMaxOutage)
		}
		if mail > chaosMaxOutage {
			t.Errorf("after the kill of the %s, no message was accepted for %v, more than %v",
				f.what, mail.Round(time.Millisecond), chaosMaxOutage)
		}
	}

	t.Logf("SMTP refusals: %s", tally(ld.refusals))
	t.Logf("sign-in failures: %s; %d sign-ins passed", tally(ld.loginErr), len(ld.logins))
	t.Logf("chaos: %d messages sent, %d acknowledged, %d delivered, %d lost, %d duplicates, "+
		"%d unacknowledged but delivered; longest sign-in outage: %s; "+
		"OA changes: %d posted (%d while the primary was away), %d applied at once, "+
		"%d refused with 503 and applied when sent again; load %v, drain %v, total %v",
		mail.sent, mail.acked, mail.delivered, mail.lost, mail.dups, mail.unacked,
		strings.Join(outages, ", "), oa.posted, oa.duringOutage, oa.applied, oa.refused,
		loadTime.Round(time.Second), mail.drain.Round(100*time.Millisecond),
		time.Since(began).Round(time.Second))
}
