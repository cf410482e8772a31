package queue

import (
	"container/heap"
	"fmt"
	"strings"
	"time"
)

// ParseRetry reads a retry schedule written as durations separated by
// spaces or commas, such as "1m 5m 15m 30m 1h".
func ParseRetry(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == ',' || r == '\t'
	}) {
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("queue: retry schedule %q: %q is not a positive duration", s, f)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("queue: retry schedule %q is empty", s)
	}
	return out, nil
}

// RetryDelay answers the wait after the given number of failed
// attempts (1 for the first) on schedule; the last step repeats.
func RetryDelay(schedule []time.Duration, attempts int) time.Duration {
	if len(schedule) == 0 {
		schedule = DefaultRetry
	}
	i := min(max(attempts, 1), len(schedule)) - 1
	return schedule[i]
}

// due answers when the message next needs an attempt, and false when it
// needs none: it is held, or every recipient is final.
func (r *Record) due() (time.Time, bool) {
	if r.Held {
		return time.Time{}, false
	}
	var at time.Time
	found := false
	for _, rc := range r.Recipients {
		var t time.Time
		switch rc.State {
		case Pending:
			t = time.Time{}
		case Deferred:
			t = rc.Next
		default:
			continue
		}
		if !found || t.Before(at) {
			at, found = t, true
		}
	}
	return at, found
}

// slot is one scheduled attempt. A slot whose time no longer matches
// its entry's is stale and skipped when it comes up.
type slot struct {
	at time.Time
	e  *entry
}

// schedule is a min-heap of slots by time.
type schedule []slot

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].at.Before(s[j].at) }
func (s schedule) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)        { *s = append(*s, x.(slot)) }
func (s *schedule) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

// reschedule puts an entry on the schedule at its due time, unless it
// has none or an attempt runs. The caller holds q.mu and must not hold
// e.mu in a way that waits on q.mu.
func (q *Queue) reschedule(e *entry) {
	if e.busy || e.deleted {
		return
	}
	e.mu.Lock()
	at, ok := e.rec.due()
	e.mu.Unlock()
	if ok {
		heap.Push(&q.sched, slot{at: at, e: e})
	}
}
