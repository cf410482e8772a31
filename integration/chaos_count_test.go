package integration

import (
	"testing"
	"time"
)

// mailFigures is the chaos load's mail, counted at the end.
type mailFigures struct {
	// sent counts every message the load tried to send, acked those
	// answered 250.
	sent, acked int
	// delivered counts the acknowledged messages found in their
	// INBOX, lost those not found, dups the messages found more than
	// once, unacked the messages never acknowledged but delivered.
	delivered, lost, dups, unacked int
	// drain is how long after the load the queues took to empty.
	drain time.Duration
}

// account waits until the fronts' queues are empty and every
// acknowledged message is in its INBOX, up to chaosDrain, reading every
// INBOX through the fronts; then it requires each acknowledged message
// there once and no message twice. The load must have stopped.
func (l *chaosLoad) account(t *testing.T, fronts []*node) mailFigures {
	t.Helper()
	start := time.Now()
	var stored map[string]int
	for {
		var missing, queued int
		var err error
		stored, err = l.readInboxes(fronts)
		for i := 0; err == nil && i < len(fronts); i++ {
			var q int
			q, err = queueSize(fronts[i])
			queued += q
		}
		for tok, m := range l.msgs {
			if m.acked && stored[tok] == 0 {
				missing++
			}
		}
		if err == nil && missing == 0 && queued == 0 {
			break
		}
		if time.Since(start) > chaosDrain {
			if err != nil {
				t.Fatalf("%v after the load: %v", chaosDrain, err)
			}
			t.Errorf("%v after the load: %d acknowledged messages missing, %d queued",
				chaosDrain, missing, queued)
			break
		}
		time.Sleep(time.Second)
	}

	f := mailFigures{sent: len(l.msgs), drain: time.Since(start)}
	for tok, m := range l.msgs {
		k := stored[tok]
		if m.acked {
			f.acked++
		}
		switch {
		case m.acked && k == 0:
			f.lost++
			if f.lost <= 5 {
				t.Errorf("%s got 250 from front %d and is not in %s's INBOX",
					tok, m.front+1, l.accounts[m.account].login)
			}
		case m.acked:
			f.delivered++
		case k > 0:
			f.unacked++
		}
		if k > 1 {
			f.dups++
			if f.dups <= 5 {
				t.Errorf("%s is in %s's INBOX %d times", tok, l.accounts[m.account].login, k)
			}
		}
	}
	for tok := range stored {
		if l.msgs[tok] == nil {
			t.Errorf("an INBOX holds %s, which the load never sent", tok)
		}
	}
	if f.lost+f.dups > 0 {
		t.Errorf("%d acknowledged messages lost, %d messages duplicated", f.lost, f.dups)
	}
	return f
}

// readInboxes reads every account's INBOX, through the fronts in turn,
// and answers how many times each load token is there.
func (l *chaosLoad) readInboxes(fronts []*node) (map[string]int, error) {
	stored := map[string]int{}
	for i, a := range l.accounts {
		got, err := readInbox(fronts[i%len(fronts)].imapAddr, a.login, a.password, true)
		if err != nil {
			return nil, err
		}
		for tok, k := range got {
			stored[tok] += k
		}
	}
	return stored, nil
}
