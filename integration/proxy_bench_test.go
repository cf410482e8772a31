package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// proxyBenchMessages is how many messages the benchmark's INBOX holds.
const proxyBenchMessages = 50

// BenchmarkIMAPProxy times IMAP commands on one account two ways: on a
// session through a front's proxy, and on a session straight to the
// back that holds the account. Each of the b.N rounds runs NOOP,
// SELECT INBOX, FETCH 1:* (FLAGS) and UID FETCH of one whole message
// on both sessions, in turn, so both see the same machine load. It
// reports commands per second and the median and 99th percentile
// latency of a command for each path, and logs the ratio.
//
//	go test -run '^$' -bench IMAPProxy -benchtime 2000x ./integration/
func BenchmarkIMAPProxy(b *testing.B) {
	c := startCluster(b, 1)
	password := randomString(b, 20)
	address := createUser(b, c.front, "zhaolei", password, 0)
	for i := range proxyBenchMessages {
		sendTo(b, c.front, address, fmt.Sprintf("roster %d", i))
	}
	waitInbox(b, c.front, "zhaolei", password, proxyBenchMessages, 30*time.Second)

	direct := benchSession(b, c.backs[0].imapAddr, "zhaolei", password)
	front := benchSession(b, c.front.imapAddr, "zhaolei", password)
	var dLat, fLat []time.Duration
	var dTotal, fTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := benchRound(b, direct)
		f := benchRound(b, front)
		dLat, fLat = append(dLat, d...), append(fLat, f...)
		for k := range d {
			dTotal += d[k]
			fTotal += f[k]
		}
	}
	b.StopTimer()
	direct.Logout().Wait()
	front.Logout().Wait()

	dOps := float64(len(dLat)) / dTotal.Seconds()
	fOps := float64(len(fLat)) / fTotal.Seconds()
	b.ReportMetric(dOps, "direct-ops/s")
	b.ReportMetric(fOps, "front-ops/s")
	b.ReportMetric(micros(percentile(dLat, 50)), "direct-p50-µs")
	b.ReportMetric(micros(percentile(dLat, 99)), "direct-p99-µs")
	b.ReportMetric(micros(percentile(fLat, 50)), "front-p50-µs")
	b.ReportMetric(micros(percentile(fLat, 99)), "front-p99-µs")
	b.Logf("%d commands each way: direct %.0f/s (p50 %v, p99 %v), through the front %.0f/s (p50 %v, p99 %v); front/direct throughput %.2f",
		len(dLat), dOps, percentile(dLat, 50), percentile(dLat, 99),
		fOps, percentile(fLat, 50), percentile(fLat, 99), fOps/dOps)
}

// benchSession signs in at addr and answers the client.
func benchSession(b *testing.B, addr, user, password string) *imapclient.Client {
	b.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		b.Fatalf("LOGIN at %s: %v", addr, err)
	}
	return c
}

// benchRound runs the four commands once and answers each one's time.
func benchRound(b *testing.B, c *imapclient.Client) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, 4)
	timed := func(what string, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		out = append(out, time.Since(start))
	}
	timed("NOOP", func() error { return c.Noop().Wait() })
	var last imap.UID
	timed("SELECT INBOX", func() error {
		sel, err := c.Select("INBOX", nil).Wait()
		if err == nil && sel.NumMessages != proxyBenchMessages {
			err = fmt.Errorf("%d messages, want %d", sel.NumMessages, proxyBenchMessages)
		}
		if err == nil {
			last = sel.UIDNext - 1
		}
		return err
	})
	timed("FETCH 1:* (FLAGS)", func() error {
		var all imap.SeqSet
		all.AddRange(1, 0) // 1:*
		msgs, err := c.Fetch(all, &imap.FetchOptions{Flags: true}).Collect()
		if err == nil && len(msgs) != proxyBenchMessages {
			err = fmt.Errorf("%d messages, want %d", len(msgs), proxyBenchMessages)
		}
		return err
	})
	timed("UID FETCH BODY.PEEK[]", func() error {
		section := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.UIDSetNum(last),
			&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err == nil && (len(msgs) != 1 || len(msgs[0].FindBodySection(section)) == 0) {
			err = fmt.Errorf("no body for UID %d", last)
		}
		return err
	})
	return out
}

// percentile answers the p-th percentile of the durations.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// micros answers d in microseconds.
func micros(d time.Duration) float64 {
	return float64(d) / float64(time.Microsecond)
}
