package mailview_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/mailcore/mailview"
	"github.com/egretair/egret/mailcore/store"
)

var quiet = slog.New(slog.DiscardHandler)

// fill writes n messages straight into an account's INBOX as another
// Maildir writer would, which is how a large mailbox is built in
// seconds; the store gives them UIDs when it next loads the account.
func fill(t testing.TB, dir, account string, n int) {
	t.Helper()
	st, err := store.Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureAccount(context.Background(), account); err != nil {
		t.Fatal(err)
	}
	st.Close()
	inbox := filepath.Join(dir, "accounts", account, "mailboxes", "INBOX", "new")
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		date := base.Add(time.Duration(i) * time.Minute)
		msg := fmt.Sprintf("From: =?UTF-8?B?%s?= <sender%d@egretair.example>\r\n"+
			"Subject: =?GB18030?B?xOO6wyDKwL3n?= %d\r\n"+
			"Date: %s\r\n\r\nbody %d\r\n",
			"5byg5LiJ", i, i, date.Format(time.RFC1123Z), i)
		name := fmt.Sprintf("%d.b%06d.bench", date.Unix(), i)
		if err := os.WriteFile(filepath.Join(inbox, name), []byte(msg), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFactsCountAndDecodeTheLatest(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, "acct-1", 12)
	st, err := store.Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &mailview.Reader{Store: st}
	ctx := context.Background()
	if _, err := st.StoreFlags(ctx, "acct-1", store.Inbox, []uint32{12}, store.FlagsAdd, []string{store.FlagSeen}); err != nil {
		t.Fatal(err)
	}

	f, err := r.Facts(ctx, "acct-1", 1<<30, 3)
	if err != nil {
		t.Fatal(err)
	}
	if f.Total != 12 || f.Unread != 11 || f.QuotaBytes != 1<<30 || f.SizeBytes == 0 {
		t.Fatalf("counts: %+v", f)
	}
	if len(f.Latest) != 3 || f.Latest[0].UID != 12 || f.Latest[2].UID != 10 {
		t.Fatalf("latest: %+v", f.Latest)
	}
	first := f.Latest[0]
	if first.Unread || !f.Latest[1].Unread {
		t.Fatalf("unread marks: %+v", f.Latest)
	}
	if first.From != "张三" || first.FromAddress != "sender11@egretair.example" ||
		!strings.HasPrefix(first.Subject, "你好 世界") {
		t.Fatalf("decoded envelope: %+v", first)
	}
	i := slices.IndexFunc(f.Folders, func(b mailview.Folder) bool { return b.Name == "INBOX" })
	if i != 0 || f.Folders[0].Unread != 11 {
		t.Fatalf("folders: %+v", f.Folders)
	}

	// Past the end is an empty page, not an error.
	p, err := r.Page(ctx, "acct-1", "INBOX", 5, 5)
	if err != nil || len(p.Messages) != 0 || p.Pages != 3 {
		t.Fatalf("page 5: %+v %v", p, err)
	}
}

// BenchmarkFacts10000 measures what the OA portal's call costs against
// a 10,000-message INBOX once the account is loaded: counts of every
// folder and the five latest envelopes. It reports p50 and p99.
func BenchmarkFacts10000(b *testing.B) {
	dir := b.TempDir()
	fill(b, dir, "acct-big", 10_000)
	st, err := store.Open(dir, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r := &mailview.Reader{Store: st}
	ctx := context.Background()
	start := time.Now()
	if f, err := r.Facts(ctx, "acct-big", 0, 5); err != nil || f.Total != 10_000 {
		b.Fatalf("%+v %v", f.Total, err)
	}
	first := time.Since(start)

	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := r.Facts(ctx, "acct-big", 0, 5); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(first.Microseconds()), "first-µs")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	if p99 := lat[len(lat)*99/100]; p99 > 50*time.Millisecond {
		b.Errorf("p99 %v, want under 50ms", p99)
	}
}
