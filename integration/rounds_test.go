package integration

import (
	"sync"
	"time"
)

// rounds runs work at a steady pace until it is stopped: the shape of
// every load the cluster and chaos tests put on their nodes. The zero
// value is ready to use.
type rounds struct {
	stopMu  sync.Mutex
	stop    chan struct{}
	done    sync.WaitGroup
	stopped bool
}

// stopCh answers the channel closed at stopLoad.
func (r *rounds) stopCh() chan struct{} {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.stop == nil {
		r.stop = make(chan struct{})
	}
	return r.stop
}

// every calls round with 0, 1, 2 ... once every interval, on a
// goroutine of its own, until stopLoad; a slow round delays the next
// rather than piling up.
func (r *rounds) every(interval time.Duration, round func(k int)) {
	stop := r.stopCh()
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			round(k)
		}
	}()
}

// stopLoad ends the rounds and waits for those in flight. Calling it
// again does nothing more.
func (r *rounds) stopLoad() {
	stop := r.stopCh()
	r.stopMu.Lock()
	if !r.stopped {
		r.stopped = true
		close(stop)
	}
	r.stopMu.Unlock()
	r.done.Wait()
}
