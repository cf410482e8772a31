package submission

import (
	"sync"
	"time"
)

// limiter counts each account's messages over a sliding window. It is
// kept in memory: a restart forgets the counts, which lets a sender at
// most one more window's worth through.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	sent map[string][]time.Time
}

// newLimiter allows max messages per window; max < 0 allows any number.
func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, sent: map[string][]time.Time{}}
}

// allow reports whether account may send one more message now.
func (l *limiter) allow(account string) bool {
	if l.max < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(account)) < l.max
}

// record counts one message of account.
func (l *limiter) record(account string) {
	if l.max < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent[account] = append(l.recent(account), l.now())
}

// recent drops the times older than the window and answers the rest.
// The caller holds l.mu.
func (l *limiter) recent(account string) []time.Time {
	cut := l.now().Add(-l.window)
	ts := l.sent[account]
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.sent, account)
		return nil
	}
	l.sent[account] = ts
	return ts
}
