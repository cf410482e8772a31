package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Op is an operator's command on one message.
type Op string

// The commands of `egret queue`.
const (
	// OpHold stops attempts until OpRelease.
	OpHold Op = "hold"
	// OpRelease lets a held message be tried again.
	OpRelease Op = "release"
	// OpRetry makes deferred and failed recipients due now, and gives
	// failed ones a new give-up time.
	OpRetry Op = "retry"
	// OpDelete removes the message for good, delivered or not.
	OpDelete Op = "delete"
)

// ErrBadOp means the command is not one of the Op values.
var ErrBadOp = errors.New("queue: unknown command")

// Apply carries out an operator's command on the message id in this
// process, and answers what it did in a few words.
func (q *Queue) Apply(op Op, id string) (string, error) {
	q.mu.Lock()
	e := q.entries[id]
	q.mu.Unlock()
	if e == nil {
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}

	e.mu.Lock()
	if e.deleted {
		e.mu.Unlock()
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var done string
	var err error
	switch op {
	case OpHold:
		e.rec.Held, done = true, "held"
		err = q.writeRecord(&e.rec)
	case OpRelease:
		e.rec.Held, done = false, "released"
		err = q.writeRecord(&e.rec)
	case OpRetry:
		n := 0
		now := q.cfg.Now().UTC()
		for i := range e.rec.Recipients {
			rc := &e.rec.Recipients[i]
			if rc.State == Failed {
				e.rec.Expires = later(e.rec.Expires, now.Add(q.cfg.GiveUpAfter))
			}
			if rc.State == Failed || rc.State == Deferred {
				rc.State, rc.Next = Pending, time.Time{}
				n++
			}
		}
		done = fmt.Sprintf("%d recipients due now", n)
		err = q.writeRecord(&e.rec)
	case OpDelete:
		// The removal is made durable: a deleted message must not
		// come back after a crash.
		e.deleted, done = true, "deleted"
		err = q.removeFiles(id)
		if err == nil {
			err = syncDir(filepath.Join(q.dir, "spool"))
		}
	default:
		err = fmt.Errorf("%w: %q", ErrBadOp, op)
	}
	e.mu.Unlock()
	if err != nil {
		return "", err
	}
	q.log.Info("queue command applied", "queue_id", id, "command", string(op))

	q.mu.Lock()
	if e.deleted && !e.busy && q.entries[id] == e {
		delete(q.entries, id)
	}
	q.reschedule(e)
	q.mu.Unlock()
	q.poke()
	return done, nil
}

// later answers the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// control applies the commands that `egret queue` drops into control/
// while this process holds the lock.
func (q *Queue) control() {
	defer q.wg.Done()
	dir := filepath.Join(q.dir, "control")
	t := time.NewTicker(q.cfg.ControlPoll)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			q.log.Warn("control folder unreadable", "err", err)
			continue
		}
		for _, ent := range entries {
			name, ok := strings.CutSuffix(ent.Name(), ".cmd")
			if !ok {
				continue
			}
			q.runCommand(dir, name)
		}
	}
}

// runCommand applies one command file and writes its answer.
func (q *Queue) runCommand(dir, name string) {
	cmd := filepath.Join(dir, name+".cmd")
	b, err := os.ReadFile(cmd)
	if err != nil {
		return
	}
	op, id, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	answer := ""
	done, err := q.Apply(Op(op), id)
	if err != nil {
		answer = "error " + err.Error()
	} else {
		answer = "ok " + done
	}
	out := filepath.Join(dir, name+".out")
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, []byte(answer+"\n"), 0o600); err == nil {
		os.Rename(tmp, out)
	}
	os.Remove(cmd)
}

// Command carries out an operator's command on the queue folder dir. When
// no process holds the queue's lock, it takes the lock and acts on the
// files itself; otherwise it hands the command to the running queue
// through control/ and waits for the answer until ctx ends.
func Command(ctx context.Context, cfg Config, op Op, id string) (string, error) {
	switch op {
	case OpHold, OpRelease, OpRetry, OpDelete:
	default:
		return "", fmt.Errorf("%w: %q", ErrBadOp, op)
	}
	if !validID(id) {
		return "", fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	q, err := Open(cfg, nil, nil)
	if err == nil {
		defer q.Close()
		return q.Apply(op, id)
	}
	if !errors.Is(err, ErrLocked) {
		return "", err
	}

	// A server runs the queue: hand the command over.
	dir := filepath.Join(cfg.Dir, "control")
	var rnd [6]byte
	rand.Read(rnd[:])
	name := fmt.Sprintf("%d-%s", time.Now().UnixNano(), hex.EncodeToString(rnd[:]))
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(string(op)+" "+id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name+".cmd")); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("queue: %w", err)
	}
	out := filepath.Join(dir, name+".out")
	for {
		b, err := os.ReadFile(out)
		if err == nil {
			os.Remove(out)
			answer := strings.TrimSpace(string(b))
			if msg, ok := strings.CutPrefix(answer, "error "); ok {
				return "", errors.New(msg)
			}
			return strings.TrimPrefix(answer, "ok "), nil
		}
		select {
		case <-ctx.Done():
			// Withdraw the command, unless it was taken meanwhile.
			if os.Remove(filepath.Join(dir, name+".cmd")) == nil {
				return "", fmt.Errorf("queue: the running server did not take the command: %w", ctx.Err())
			}
			return "", fmt.Errorf("queue: no answer from the running server: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
