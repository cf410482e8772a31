package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// dispatch hands due entries to the workers, one attempt per message at
// a time, and sleeps until the next is due.
func (q *Queue) dispatch(work chan<- *entry) {
	defer q.wg.Done()
	defer close(work)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		now := q.cfg.Now()
		var ready []*entry
		for q.sched.Len() > 0 && !q.sched[0].at.After(now) {
			s := heap.Pop(&q.sched).(slot)
			if q.entries[s.e.rec.ID] != s.e || s.e.busy || s.e.deleted {
				continue
			}
			s.e.mu.Lock()
			at, ok := s.e.rec.due()
			s.e.mu.Unlock()
			if !ok || at.After(now) {
				// Stale: a later slot for the entry is on the heap.
				continue
			}
			s.e.busy = true
			ready = append(ready, s.e)
		}
		wait := time.Hour
		if q.sched.Len() > 0 {
			wait = max(q.sched[0].at.Sub(now), time.Millisecond)
		}
		q.mu.Unlock()

		for i, e := range ready {
			select {
			case work <- e:
			case <-q.stop:
				q.mu.Lock()
				for _, left := range ready[i:] {
					left.busy = false
				}
				q.mu.Unlock()
				return
			}
		}
		if len(ready) > 0 {
			// Handing over took time; look again before sleeping.
			continue
		}

		timer.Reset(wait)
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// worker runs attempts until the dispatcher stops.
func (q *Queue) worker(work <-chan *entry) {
	defer q.wg.Done()
	for e := range work {
		q.attempt(e)
		q.mu.Lock()
		e.busy = false
		if e.kick != nil && !e.deleted {
			q.kickEntry(e, e.kick)
		}
		e.kick = nil
		if e.deleted {
			if q.entries[e.rec.ID] == e {
				delete(q.entries, e.rec.ID)
			}
		} else {
			q.reschedule(e)
		}
		q.mu.Unlock()
		q.poke()
	}
}

// attempt tries the due recipients of one message once and records the
// outcome.
func (q *Queue) attempt(e *entry) {
	e.mu.Lock()
	rec := e.rec
	rec.Recipients = slices.Clone(rec.Recipients)
	e.mu.Unlock()

	now := q.cfg.Now()
	var idx []int
	d := Delivery{ID: rec.ID, From: rec.From, UTF8: rec.UTF8, Size: rec.Size}
	for i, rc := range rec.Recipients {
		if rc.State == Pending || rc.State == Deferred && !rc.Next.After(now) {
			idx = append(idx, i)
			d.Recipients = append(d.Recipients, rc.Address)
		}
	}
	if len(idx) == 0 {
		return
	}

	// The message file is checked as it is read: a transport never
	// sees the end of a message that is not whole.
	results := make([]error, len(idx))
	path := filepath.Join(q.dir, "spool", rec.ID+".msg")
	f, err := os.Open(path)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.AttemptTimeout)
		body := newCheckedReader(f, rec.Size, rec.SHA256)
		got := q.transport.Deliver(ctx, d, body)
		cancel()
		f.Close()
		copy(results, got)
		for i := len(got); i < len(results); i++ {
			results[i] = errors.New("queue: transport gave no answer")
		}
		if body.bad != nil {
			err = body.bad
		}
	}
	damaged := errors.Is(err, errDamaged)
	if err != nil {
		for i := range results {
			results[i] = err
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deleted {
		return
	}
	if damaged {
		q.log.Error("message file damaged, set aside", "queue_id", rec.ID)
		q.moveAside(rec.ID + ".rec")
		q.moveAside(rec.ID + ".msg")
		e.deleted = true
		return
	}

	// The outcome is applied to the entry's current record, which a
	// control command (hold) may have changed meanwhile.
	var gaveUp, delayed []Recipient
	now = q.cfg.Now()
	for k, i := range idx {
		rc := &e.rec.Recipients[i]
		res := results[k]
		switch {
		case res == nil:
			rc.State, rc.Reply, rc.Next = Delivered, "", time.Time{}
		case IsPermanent(res):
			rc.Attempts++
			rc.State, rc.Reply, rc.Next = Failed, res.Error(), time.Time{}
			gaveUp = append(gaveUp, *rc)
			q.log.Warn("delivery failed", "queue_id", rec.ID,
				"account", rc.Account, "rcpt", rc.Address, "reply", rc.Reply)
		default:
			rc.Attempts++
			rc.Reply = res.Error()
			next := now.Add(RetryDelay(q.cfg.Retry, rc.Attempts))
			if !next.Before(e.rec.Expires) {
				rc.State, rc.Next = Failed, time.Time{}
				rc.Reply = fmt.Sprintf("gave up after %d attempts: %s", rc.Attempts, rc.Reply)
				gaveUp = append(gaveUp, *rc)
				q.log.Warn("delivery given up", "queue_id", rec.ID,
					"account", rc.Account, "rcpt", rc.Address,
					"attempts", rc.Attempts, "reply", res.Error())
				continue
			}
			rc.State, rc.Next = Deferred, next.UTC()
			delayed = append(delayed, *rc)
			q.log.Info("delivery deferred", "queue_id", rec.ID,
				"account", rc.Account, "rcpt", rc.Address,
				"attempts", rc.Attempts, "next", rc.Next, "reply", rc.Reply)
		}
	}

	// Every recipient delivered: the message leaves the queue.
	allDelivered := true
	for _, rc := range e.rec.Recipients {
		if rc.State != Delivered {
			allDelivered = false
		}
	}
	if allDelivered {
		if err := q.removeFiles(rec.ID); err != nil {
			q.log.Error("delivered message not removed", "queue_id", rec.ID, "err", err)
		}
		e.deleted = true
		return
	}

	// A delay is told once per message (RFC 3464 §2.3.3 "delayed"),
	// and the record says so before the sender is told.
	reporter, _ := q.Notifier.(Reporter)
	tellDelay := reporter != nil && len(delayed) > 0 &&
		!e.rec.DelayNotified && q.cfg.DelayNotice > 0 &&
		now.Sub(e.rec.Received) >= q.cfg.DelayNotice
	if tellDelay {
		e.rec.DelayNotified = true
	}

	// Otherwise the new state is durable before anyone acts on it.
	// Not yet: a crash between this write and the notices below
	// loses them; the window is one Enqueue long.
	if err := q.writeRecord(&e.rec); err != nil {
		q.log.Error("queue record not written; a restart repeats the attempt",
			"queue_id", rec.ID, "err", err)
	}
	if q.Notifier != nil {
		for _, rc := range gaveUp {
			q.Notifier.GaveUp(e.rec, rc)
		}
	}
	if reporter != nil && len(gaveUp) > 0 {
		reporter.Failed(e.rec, gaveUp)
	}
	if tellDelay {
		reporter.Delayed(e.rec, delayed)
	}
}
