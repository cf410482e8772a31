package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors the queue answers with; wrapped errors carry the details.
var (
	// ErrLocked means another process runs the queue in this folder.
	ErrLocked = errors.New("queue: in use by another process")
	// ErrNotFound means no message has that id.
	ErrNotFound = errors.New("queue: no such message")
	// ErrClosed is answered after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrBadEnvelope means Enqueue was given no usable id or recipient.
	ErrBadEnvelope = errors.New("queue: bad envelope")
)

// Defaults for Config fields left zero.
const (
	DefaultWorkers        = 8
	DefaultGiveUpAfter    = 5 * 24 * time.Hour
	DefaultAttemptTimeout = 5 * time.Minute
	DefaultControlPoll    = 500 * time.Millisecond
	DefaultDelayNotice    = 4 * time.Hour
)

// DefaultRetry is the wait after each failed attempt; the last one
// repeats. It follows the habit of the established MTAs: the first
// retry within minutes, then hourly.
var DefaultRetry = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute,
	30 * time.Minute, time.Hour,
}

// Config is the queue's configuration.
type Config struct {
	// Dir is the queue folder, laid out as in the package comment.
	Dir string
	// Workers bounds the attempts in flight; zero means 8.
	Workers int
	// Retry is the wait after the first, second, ... failed attempt
	// of a recipient; the last repeats. Empty means DefaultRetry.
	Retry []time.Duration
	// GiveUpAfter is how long after its arrival a message's
	// recipients are tried; zero means 5 days.
	GiveUpAfter time.Duration
	// AttemptTimeout bounds one attempt; zero means 5 minutes.
	AttemptTimeout time.Duration
	// ControlPoll is how often control/ is read; zero means 500ms.
	ControlPoll time.Duration
	// DelayNotice is how long after its arrival a message still
	// deferred is reported to a Reporter, once; zero means 4 hours,
	// a negative value never.
	DelayNotice time.Duration
	// Now answers the time; nil means time.Now. Tests move it to
	// reach a give-up or a delay notice without waiting.
	Now func() time.Time
}

// Envelope is what Enqueue is told of a message besides its bytes.
type Envelope struct {
	// ID names the message; the caller makes it unique (the SMTP
	// server puts it in the Received field too). 1 to 64 letters,
	// digits and '-'.
	ID string
	// From is the reverse path; empty for the null sender.
	From string
	// UTF8 is set for SMTPUTF8 messages.
	UTF8 bool
	// Recipients are the addresses to deliver to and, for logs, the
	// ids of their accounts.
	Recipients []Recipient
}

// Delivery is what a Transport is told of an attempt.
type Delivery struct {
	ID   string
	From string
	UTF8 bool
	Size int64
	// Recipients are the addresses tried in this attempt.
	Recipients []string
}

// Transport carries a message to its recipients.
type Transport interface {
	// Deliver sends body to d.Recipients and answers one error per
	// recipient, in order: nil for delivered. An error wrapped with
	// Permanent fails the recipient; any other is retried. When
	// reading body fails, Deliver must abandon the transaction, so
	// that no recipient gets a message that is not whole.
	Deliver(ctx context.Context, d Delivery, body io.Reader) []error
}

// Notifier is told of each recipient the queue gives up on.
type Notifier interface {
	// GaveUp is called once per failed recipient, after its record
	// is written.
	GaveUp(rec Record, rcpt Recipient)
}

// Reporter is what a Notifier may implement besides, to be told of
// failures once per attempt and of long deferrals, as the sender's
// notices need (package dsn writes them).
type Reporter interface {
	// Failed is called once per attempt that failed recipients,
	// permanently or by giving up, after the record is written.
	Failed(rec Record, rcpts []Recipient)
	// Delayed is called once per message, the first time an attempt
	// defers recipients later than Config.DelayNotice after its
	// arrival, after the record says so.
	Delayed(rec Record, rcpts []Recipient)
}

// permanent marks an error as permanent.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err so the queue fails the recipient without retries.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Queue is the delivery queue of one node.
type Queue struct {
	cfg       Config
	dir       string
	transport Transport
	log       *slog.Logger
	lock      *os.File

	// Notifier, when set before Start, is told of give-ups.
	Notifier Notifier

	mu      sync.Mutex
	entries map[string]*entry
	sched   schedule
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	started bool
}

// entry is one message in memory.
type entry struct {
	// mu guards rec and the record file, so a control command and an
	// attempt's result never write over each other.
	mu      sync.Mutex
	rec     Record
	deleted bool

	// busy is set while an attempt runs; Queue.mu guards it.
	busy bool
	// kick, set by Kick while an attempt runs, makes the recipients
	// it matches due again as soon as the attempt ends; Queue.mu
	// guards it.
	kick func(Recipient) bool
}

// Open takes the queue folder's lock, creating the folder when needed,
// removes leftovers of messages that were never acknowledged, and loads
// the records. Start begins the deliveries.
func Open(cfg Config, t Transport, log *slog.Logger) (*Queue, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if len(cfg.Retry) == 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.ControlPoll <= 0 {
		cfg.ControlPoll = DefaultControlPoll
	}
	if cfg.DelayNotice == 0 {
		cfg.DelayNotice = DefaultDelayNotice
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	for _, sub := range []string{"tmp", "spool", "damaged", "control"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	lock, err := lockFile(filepath.Join(cfg.Dir, "lock"))
	if err != nil {
		return nil, err
	}
	q := &Queue{
		cfg:       cfg,
		dir:       cfg.Dir,
		transport: t,
		log:       log.With("service", "queue"),
		lock:      lock,
		entries:   make(map[string]*entry),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if err := q.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return q, nil
}

// load reads the spool after a start: files in tmp/ are half-written and
// go; a message file without its record, and a record without its
// message file, were never acknowledged (the folder sync did not
// complete) and go too; a record or message that fails its checks is
// set aside in damaged/.
func (q *Queue) load() error {
	tmp := filepath.Join(q.dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("queue: %w", err)
	}

	spool := filepath.Join(q.dir, "spool")
	entries, err := os.ReadDir(spool)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	removed := false
	for name := range names {
		id, ok := strings.CutSuffix(name, ".msg")
		if ok && !names[id+".rec"] {
			q.log.Info("unacknowledged message removed", "queue_id", id)
			os.Remove(filepath.Join(spool, name))
			removed = true
		}
	}
	for name := range names {
		id, ok := strings.CutSuffix(name, ".rec")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(spool, name))
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		rec, err := decodeRecord(b)
		if err == nil && rec.ID != id {
			err = fmt.Errorf("%w: record of %s is named %s", errDamaged, rec.ID, id)
		}
		if err != nil {
			q.log.Error("damaged record set aside", "queue_id", id, "err", err)
			q.moveAside(name)
			q.moveAside(id + ".msg")
			removed = true
			continue
		}
		if !names[id+".msg"] {
			q.log.Info("unacknowledged record removed", "queue_id", id)
			os.Remove(filepath.Join(spool, name))
			removed = true
			continue
		}
		fi, err := os.Stat(filepath.Join(spool, id+".msg"))
		if err != nil || fi.Size() != rec.Size {
			q.log.Error("message file differs from its record, set aside",
				"queue_id", id, "want_size", rec.Size)
			q.moveAside(name)
			q.moveAside(id + ".msg")
			removed = true
			continue
		}
		e := &entry{rec: *rec}
		q.entries[id] = e
		q.reschedule(e)
	}
	if removed {
		if err := syncDir(spool); err != nil {
			return err
		}
	}
	if n := len(q.entries); n > 0 {
		q.log.Info("queue loaded", "messages", n, "due", q.sched.Len())
	}
	return nil
}

// Enqueue writes a message and its record and answers once both are
// durable; see the package comment. r's errors are answered wrapped.
func (q *Queue) Enqueue(ctx context.Context, env Envelope, r io.Reader) (Record, error) {
	if !validID(env.ID) || len(env.Recipients) == 0 {
		return Record{}, fmt.Errorf("%w: id %q, %d recipients",
			ErrBadEnvelope, env.ID, len(env.Recipients))
	}
	q.mu.Lock()
	closed, exists := q.closed, q.entries[env.ID] != nil
	q.mu.Unlock()
	if closed {
		return Record{}, ErrClosed
	}
	if exists {
		return Record{}, fmt.Errorf("%w: id %s is queued already", ErrBadEnvelope, env.ID)
	}

	// The message: written and synced under tmp/.
	tmpMsg := filepath.Join(q.dir, "tmp", env.ID+".msg")
	size, sum, err := writeSynced(tmpMsg, r)
	if err != nil {
		return Record{}, err
	}
	now := q.cfg.Now().UTC()
	rec := Record{
		ID:       env.ID,
		From:     env.From,
		UTF8:     env.UTF8,
		Received: now,
		Expires:  now.Add(q.cfg.GiveUpAfter),
		Size:     size,
		SHA256:   sum,
	}
	for _, rc := range env.Recipients {
		rec.Recipients = append(rec.Recipients,
			Recipient{Address: rc.Address, Account: rc.Account, State: Pending})
	}

	// The record: written and synced under tmp/ too.
	tmpRec := filepath.Join(q.dir, "tmp", env.ID+".rec")
	b, err := encodeRecord(&rec)
	if err == nil {
		_, _, err = writeSynced(tmpRec, strings.NewReader(string(b)))
	}
	if err != nil {
		os.Remove(tmpMsg)
		return Record{}, err
	}

	// Both renamed into spool/, message first, then spool/ synced:
	// only after that sync is the message acknowledged.
	spool := filepath.Join(q.dir, "spool")
	msgPath := filepath.Join(spool, env.ID+".msg")
	recPath := filepath.Join(spool, env.ID+".rec")
	if err := os.Rename(tmpMsg, msgPath); err != nil {
		os.Remove(tmpMsg)
		os.Remove(tmpRec)
		return Record{}, fmt.Errorf("queue: %s: %w", env.ID, err)
	}
	if err := os.Rename(tmpRec, recPath); err != nil {
		os.Remove(msgPath)
		os.Remove(tmpRec)
		return Record{}, fmt.Errorf("queue: %s: %w", env.ID, err)
	}
	if err := syncDir(spool); err != nil {
		os.Remove(recPath)
		os.Remove(msgPath)
		return Record{}, err
	}

	e := &entry{rec: rec}
	q.mu.Lock()
	q.entries[env.ID] = e
	q.reschedule(e)
	q.mu.Unlock()
	q.poke()
	return rec, nil
}

// Start begins the deliveries and the reading of control commands. The
// context ends nothing: Close stops the queue.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.closed {
		return
	}
	q.started = true
	work := make(chan *entry)
	q.wg.Add(2 + q.cfg.Workers)
	go q.dispatch(work)
	go q.control()
	for range q.cfg.Workers {
		go q.worker(work)
	}
}

// Close stops starting attempts, waits for those in flight, and
// releases the lock.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.stop)
	q.mu.Unlock()
	q.wg.Wait()
	return q.lock.Close()
}

// Wake makes the queue look at its schedule now, as after a change of
// the clock that Config.Now answers.
func (q *Queue) Wake() { q.poke() }

// Kick makes every deferred recipient that match accepts due now, for
// a change that may let its delivery succeed (a back node that came
// back, or a standby that took over): such mail need not wait out its
// retry delay. A message whose attempt runs meanwhile has the
// recipients it defers made due once the attempt ends. It answers how
// many recipients it made due. The records are not written: a restart
// keeps the times they hold.
func (q *Queue) Kick(match func(Recipient) bool) int {
	q.mu.Lock()
	n := 0
	for _, e := range q.entries {
		if e.deleted {
			continue
		}
		if e.busy {
			e.kick = match
			continue
		}
		if k := q.kickEntry(e, match); k > 0 {
			n += k
			q.reschedule(e)
		}
	}
	q.mu.Unlock()
	if n > 0 {
		q.log.Info("deferred recipients due now", "recipients", n)
		q.poke()
	}
	return n
}

// kickEntry makes the deferred recipients of e that match due now and
// answers how many. The caller holds q.mu.
func (q *Queue) kickEntry(e *entry, match func(Recipient) bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := q.cfg.Now().UTC()
	n := 0
	for i := range e.rec.Recipients {
		rc := &e.rec.Recipients[i]
		if rc.State == Deferred && rc.Next.After(now) && match(*rc) {
			rc.Next = now
			n++
		}
	}
	return n
}

// Message opens the bytes of a queued message, as Enqueue wrote them.
func (q *Queue) Message(id string) (io.ReadCloser, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	f, err := os.Open(filepath.Join(q.dir, "spool", id+".msg"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return f, nil
}

// poke wakes the dispatcher.
func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len answers the number of messages in the queue.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// Records answers a copy of every record, oldest first.
func (q *Queue) Records() []Record {
	q.mu.Lock()
	l := make([]*entry, 0, len(q.entries))
	for _, e := range q.entries {
		l = append(l, e)
	}
	q.mu.Unlock()
	out := make([]Record, 0, len(l))
	for _, e := range l {
		e.mu.Lock()
		r := e.rec
		r.Recipients = slices.Clone(r.Recipients)
		e.mu.Unlock()
		out = append(out, r)
	}
	sortRecords(out)
	return out
}

// sortRecords orders records by arrival, then id.
func sortRecords(l []Record) {
	slices.SortFunc(l, func(a, b Record) int {
		if c := a.Received.Compare(b.Received); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// writeRecord replaces a message's record: write under tmp/, sync,
// rename into spool/, sync spool/. The caller holds e.mu.
func (q *Queue) writeRecord(rec *Record) error {
	b, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(q.dir, "tmp", fmt.Sprintf("%s.rec.%d", rec.ID, time.Now().UnixNano()))
	if _, _, err := writeSynced(tmp, strings.NewReader(string(b))); err != nil {
		return err
	}
	spool := filepath.Join(q.dir, "spool")
	if err := os.Rename(tmp, filepath.Join(spool, rec.ID+".rec")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("queue: %s: %w", rec.ID, err)
	}
	return syncDir(spool)
}

// removeFiles removes a message's record, then its message file. The
// folder is not synced: should the removal be lost, the record comes
// back with an older state and the message is delivered again, which the
// store drops as a duplicate.
func (q *Queue) removeFiles(id string) error {
	spool := filepath.Join(q.dir, "spool")
	err := os.Remove(filepath.Join(spool, id+".rec"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: %s: %w", id, err)
	}
	err = os.Remove(filepath.Join(spool, id+".msg"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: %s: %w", id, err)
	}
	return nil
}
