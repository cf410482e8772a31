package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors the store answers with; wrapped errors carry the details.
var (
	// ErrNoMailbox means the account has no mailbox of that name.
	ErrNoMailbox = errors.New("store: no such mailbox")
	// ErrMailboxExists means a mailbox of that name exists already.
	ErrMailboxExists = errors.New("store: mailbox already exists")
	// ErrBadName means a mailbox name or account id cannot be used.
	ErrBadName = errors.New("store: invalid name")
	// ErrNotAllowed means the operation is not allowed on that mailbox,
	// such as deleting INBOX.
	ErrNotAllowed = errors.New("store: not allowed on this mailbox")
	// ErrNoMessage means the mailbox has no message with that UID.
	ErrNoMessage = errors.New("store: no such message")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
)

// Store is the message store of all accounts on this node.
type Store struct {
	dir string
	log *slog.Logger

	// fence, when set, guards a folder shared with a standby node.
	fence *fenceGuard

	mu       sync.Mutex
	accounts map[string]*account
	closed   bool
}

// account is the loaded state of one account. Its lock guards everything
// below it, the mailboxes included.
type account struct {
	mu     sync.Mutex
	id     string
	dir    string
	loaded bool

	boxes map[string]*mailbox
	subs  map[string]bool
	// repaired names the index files the last load or heal wrote
	// again, for the log and for RebuildIndex; takeRepairs empties it.
	repaired []string
	validity uint32 // last UIDVALIDITY handed out
	seq      uint64 // counter for unique file name parts
	watchSeq uint64
}

// mailbox is the index of one mailbox, derived from its files.
type mailbox struct {
	name      string
	dir       string
	validity  uint32
	next      uint32 // UIDNEXT
	savedNext uint32 // UIDNEXT as last written to uidstate
	fence     uint64 // the writing node's fence, recorded in uidstate
	msgs      []*message
	delivered map[string]uint32 // unique part -> UID, for deliveries
	watchers  map[uint64]func(Change)
}

// message is the index entry of one message file.
type message struct {
	uid    uint32
	name   fileName
	flags  flagSet
	inCur  bool
	unique string
}

// path answers where the message's file is.
func (m *mailbox) path(msg *message) string {
	sub := "new"
	if msg.inCur {
		sub = "cur"
	}
	return filepath.Join(m.dir, sub, msg.name.String())
}

// Open opens (creating when needed) the store in dir. Log lines name the
// account they are about.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	for _, d := range []string{dir, filepath.Join(dir, "tmp"),
		filepath.Join(dir, "accounts")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", d, err)
		}
	}

	if err := recoverDir(dir); err != nil {
		return nil, err
	}
	return &Store{
		dir:      dir,
		log:      log,
		accounts: make(map[string]*account),
	}, nil
}

// recoverDir clears what a process that served dir before left half
// done.
func recoverDir(dir string) error {
	// Spool files left by a crash belong to deliveries that were never
	// acknowledged; the sender will try again.
	spool := filepath.Join(dir, "tmp")
	entries, err := os.ReadDir(spool)
	if err != nil {
		return fmt.Errorf("store: read %s: %w", spool, err)
	}
	for _, e := range entries {
		os.Remove(filepath.Join(spool, e.Name()))
	}
	finishRemovals(dir)
	return nil
}

// Close releases the store. Operations after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// lockAccount answers the account, loaded from disk and locked. The
// caller unlocks it.
//
// Not yet: a loaded account stays in memory until the process ends, about
// 100 bytes a message; a node with millions of messages needs eviction.
func (s *Store) lockAccount(ctx context.Context, id string) (*account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if id == "" || strings.ContainsRune(id, 0) {
		return nil, fmt.Errorf("%w: account id %q", ErrBadName, id)
	}

	// Reads are checked too: a node that lost the folder must not
	// answer from an index another node has moved past.
	if err := s.fence.check(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	a := s.accounts[id]
	if a == nil {
		a = &account{
			id:  id,
			dir: filepath.Join(s.dir, "accounts", escapeName(id)),
		}
		s.accounts[id] = a
	}
	s.mu.Unlock()

	a.mu.Lock()
	// Again with the lock held: the wait for it has no bound, and a
	// change made under it must not follow a takeover.
	if err := s.fence.check(); err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if !a.loaded {
		a.repaired = nil
		if err := s.load(a); err != nil {
			a.mu.Unlock()
			return nil, err
		}
		a.loaded = true
		s.logRepairs(a)
	}
	return a, nil
}

// EnsureAccount creates the account's folder and default mailboxes when
// they do not exist. Every other operation does the same; calling it at
// login makes the mailboxes appear before the client lists them.
func (s *Store) EnsureAccount(ctx context.Context, accountID string) error {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	a.takeRepairs()
	err = s.heal(a)
	a.takeRepairs()
	return err
}

// load builds the account's index from its files and creates what is
// missing.
func (s *Store) load(a *account) error {
	boxesDir := filepath.Join(a.dir, "mailboxes")
	if err := os.MkdirAll(boxesDir, 0o700); err != nil {
		return fmt.Errorf("store: account %s: %w", a.id, err)
	}
	// The account's folder must itself survive a crash before the
	// first message acknowledged into it does; later writes sync only
	// the folders below.
	if err := syncDir(filepath.Dir(a.dir)); err != nil {
		return fmt.Errorf("store: account %s: %w", a.id, err)
	}
	a.boxes = make(map[string]*mailbox)
	a.subs = make(map[string]bool)

	b, err := os.ReadFile(filepath.Join(a.dir, "uidvalidity"))
	if err == nil {
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		a.validity = uint32(v)
	}

	entries, err := os.ReadDir(boxesDir)
	if err != nil {
		return fmt.Errorf("store: account %s: %w", a.id, err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".deleted-") {
			// A DELETE whose removal a crash or an error cut short:
			// the mailbox is gone already, its files take space.
			if err := os.RemoveAll(filepath.Join(boxesDir, e.Name())); err != nil {
				s.log.Warn("deleted mailbox not removed", "account", a.id,
					"folder", e.Name(), "err", err)
			}
			continue
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name, err := unescapeName(e.Name())
		if err != nil {
			s.log.Warn("mailbox folder ignored", "account", a.id,
				"folder", e.Name(), "err", err)
			continue
		}
		m, err := s.loadMailbox(a, name, filepath.Join(boxesDir, e.Name()))
		if err != nil {
			return err
		}
		a.boxes[name] = m
	}

	// The account's uidvalidity file may be lost while the mailboxes
	// keep theirs: a new mailbox must still get a greater one.
	highest := a.validity
	for _, m := range a.boxes {
		highest = max(highest, m.validity)
	}
	if len(a.boxes) > 0 && (highest != a.validity || !a.validityFileOK()) {
		a.validity = highest
		if err := a.saveValidity(); err != nil {
			return err
		}
		a.repaired = append(a.repaired, "uidvalidity")
	}

	subs, err := os.ReadFile(filepath.Join(a.dir, "subscriptions"))
	firstUse := errors.Is(err, os.ErrNotExist)
	for _, line := range strings.Split(string(subs), "\n") {
		if line != "" {
			a.subs[line] = true
		}
	}

	for _, name := range defaultMailboxes {
		if a.boxes[name] != nil {
			continue
		}
		if _, err := s.createMailbox(a, name); err != nil {
			return err
		}
		if firstUse {
			a.subs[name] = true
		}
	}
	if firstUse {
		if err := a.saveSubscriptions(); err != nil {
			return err
		}
		s.log.Info("account mail folder created", "account", a.id)
	}
	return nil
}

// loadMailbox reads one mailbox's uidstate, keywords and file names.
func (s *Store) loadMailbox(a *account, name, dir string) (*mailbox, error) {
	m := &mailbox{
		name:      name,
		dir:       dir,
		fence:     s.fence.number(),
		delivered: make(map[string]uint32),
		watchers:  make(map[uint64]func(Change)),
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("store: account %s: %w", a.id, err)
		}
	}

	// Files in tmp/ were never acknowledged.
	tmps, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, e := range tmps {
		os.Remove(filepath.Join(dir, "tmp", e.Name()))
	}

	// An unreadable uidstate is not a missing one: rebuilding it would
	// hand out a new UIDVALIDITY and make every client download the
	// mailbox again because of a passing I/O error.
	b, err := os.ReadFile(filepath.Join(dir, "uidstate"))
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("store: account %s: %w", a.id, err)
	}
	v, n := parseState(b)
	haveState := v != 0 && n != 0
	m.validity, m.next, m.savedNext = v, n, n
	if !haveState {
		a.repaired = append(a.repaired, name+"/uidstate")
	}
	if m.validity == 0 {
		// uidvalidity is written once, when the mailbox gets its
		// UIDVALIDITY, so damage to uidstate does not reach it.
		b, err := os.ReadFile(filepath.Join(dir, "uidvalidity"))
		if err != nil && !isNotExist(err) {
			return nil, fmt.Errorf("store: account %s: %w", a.id, err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err == nil && v != 0 {
			m.validity = uint32(v)
		}
	}

	var foreign []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("store: account %s: %w", a.id, err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fn, ok := parseFileName(e.Name())
			if !ok {
				foreign = append(foreign, filepath.Join(sub, e.Name()))
				continue
			}
			fn.info = sub == "cur"
			if sub == "cur" && fn.String() != e.Name() {
				// A flag letter out of order or unknown: normalise.
				old := filepath.Join(dir, sub, e.Name())
				if err := os.Rename(old, filepath.Join(dir, sub, fn.String())); err != nil {
					return nil, fmt.Errorf("store: account %s: %w", a.id, err)
				}
			}
			msg := &message{
				uid:    fn.uid,
				name:   fn,
				flags:  flagSet{letters: fn.flags},
				inCur:  sub == "cur",
				unique: fn.unique,
			}
			m.msgs = append(m.msgs, msg)
		}
	}
	sort.Slice(m.msgs, func(i, j int) bool {
		return m.msgs[i].uid < m.msgs[j].uid
	})
	if m.validity == 0 {
		// Both state files lost: the names still say it.
		for _, msg := range m.msgs {
			m.validity = max(m.validity, msg.name.validity)
		}
	}
	// Two files with one UID can only come from outside; the later one
	// is given a new UID below.
	var kept []*message
	for i, msg := range m.msgs {
		if i > 0 && msg.uid == m.msgs[i-1].uid {
			foreign = append(foreign, filepath.Join(
				map[bool]string{true: "cur", false: "new"}[msg.inCur],
				msg.name.String()))
			continue
		}
		kept = append(kept, msg)
	}
	m.msgs = kept
	for _, msg := range m.msgs {
		m.next = max(m.next, msg.uid+1)
		if strings.HasPrefix(msg.unique, "d-") {
			m.delivered[msg.unique] = msg.uid
		}
	}
	// The floor marker outlives uidstate: expunged UIDs above every
	// remaining file stay spent.
	m.next = max(m.next, readFloor(dir))
	if m.next == 0 {
		m.next = 1
	}

	badKeywords := false
	if b, err := os.ReadFile(filepath.Join(dir, "keywords")); err == nil {
		var kw map[uint32][]string
		if err := json.Unmarshal(b, &kw); err != nil {
			s.log.Warn("keywords file unreadable, keywords lost",
				"account", a.id, "mailbox", name, "err", err)
			badKeywords = true
			kw = nil
		}
		for _, msg := range m.msgs {
			msg.flags.keywords = kw[msg.uid]
		}
		// Keywords name UIDs that may have been expunged since: none of
		// them may come back.
		for uid := range kw {
			m.next = max(m.next, uid+1)
		}
	}

	if m.validity == 0 {
		m.validity = a.nextValidity()
		if err := a.saveValidity(); err != nil {
			return nil, err
		}
		if len(m.msgs) > 0 {
			// Only names from before UIDVALIDITY was in them get
			// here: clients download this mailbox again.
			s.log.Warn("mailbox given a new UIDVALIDITY", "account", a.id,
				"mailbox", name, "messages", len(m.msgs))
		}
	}
	if changed, err := m.saveValidityOnce(); err != nil {
		return nil, err
	} else if changed {
		a.repaired = append(a.repaired, name+"/uidvalidity")
	}
	if badKeywords {
		if err := m.saveKeywords(); err != nil {
			return nil, err
		}
		a.repaired = append(a.repaired, name+"/keywords")
	}
	if err := m.nameValidity(); err != nil {
		return nil, fmt.Errorf("store: account %s: %w", a.id, err)
	}
	for _, rel := range foreign {
		if err := s.adopt(a, m, rel); err != nil {
			return nil, err
		}
	}
	if !haveState || m.next != m.savedNext {
		if err := m.saveState(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// adopt gives a file that another Maildir writer left (or a duplicate
// UID) the next UID and renames it into this store's format.
func (s *Store) adopt(a *account, m *mailbox, rel string) error {
	old := filepath.Join(m.dir, rel)
	fi, err := os.Stat(old)
	if err != nil {
		return fmt.Errorf("store: account %s: %w", a.id, err)
	}
	_, info, _ := strings.Cut(filepath.Base(rel), ":2,")
	msg := &message{uid: m.next, unique: a.uniqueName("x-")}
	msg.name = fileName{
		uid: msg.uid, date: fi.ModTime(), unique: msg.unique,
		size: fi.Size(), validity: m.validity, info: true,
		flags: sortLetters(info),
	}
	msg.flags.letters = msg.name.flags
	msg.inCur = true
	if err := os.Rename(old, m.path(msg)); err != nil {
		return fmt.Errorf("store: account %s: adopt %s: %w", a.id, rel, err)
	}
	m.next++
	m.msgs = append(m.msgs, msg)
	s.log.Info("message file adopted", "account", a.id,
		"mailbox", m.name, "uid", msg.uid)
	return nil
}

// nextValidity hands out a UIDVALIDITY greater than any before it in
// this account, so a mailbox deleted and created again is never taken
// for the old one (RFC 9051 §2.3.1.1).
func (a *account) nextValidity() uint32 {
	a.validity = max(a.validity+1, uint32(time.Now().Unix()))
	return a.validity
}

// saveValidity records the last UIDVALIDITY handed out.
func (a *account) saveValidity() error {
	return writeFileSynced(filepath.Join(a.dir, "uidvalidity"),
		[]byte(strconv.FormatUint(uint64(a.validity), 10)+"\n"))
}

// saveSubscriptions writes the subscription list.
func (a *account) saveSubscriptions() error {
	names := make([]string, 0, len(a.subs))
	for n := range a.subs {
		names = append(names, n)
	}
	slices.Sort(names)
	data := strings.Join(names, "\n")
	if data != "" {
		data += "\n"
	}
	return writeFileSynced(filepath.Join(a.dir, "subscriptions"), []byte(data))
}

// uniqueName answers a file name part no other message of the account
// has.
func (a *account) uniqueName(prefix string) string {
	a.seq++
	var b [6]byte
	rand.Read(b[:])
	return prefix + strconv.FormatUint(a.seq, 36) + hex.EncodeToString(b[:])
}

// parseState reads a uidstate file. It answers zero for what it cannot
// read: a damaged file may still give UIDVALIDITY.
func parseState(b []byte) (validity, next uint32) {
	lines := strings.Split(string(b), "\n")
	if len(lines) == 0 || lines[0] != "egret-uidstate 1" {
		return 0, 0
	}
	// A line counts only with its line end: a number cut short is
	// not the number that was written.
	for _, line := range lines[1 : len(lines)-1] {
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(val, 10, 32)
		if err != nil || v == 0 {
			continue
		}
		switch key {
		case "uidvalidity":
			validity = uint32(v)
		case "uidnext":
			next = uint32(v)
		}
	}
	return validity, next
}

// saveValidityOnce writes the mailbox's uidvalidity file unless it holds
// the current value already, and reports whether it wrote.
func (m *mailbox) saveValidityOnce() (bool, error) {
	path := filepath.Join(m.dir, "uidvalidity")
	want := strconv.FormatUint(uint64(m.validity), 10) + "\n"
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		return false, nil
	}
	return true, writeFileSynced(path, []byte(want))
}

// saveState writes UIDVALIDITY and UIDNEXT, synced.
func (m *mailbox) saveState() error {
	data := fmt.Sprintf("egret-uidstate 1\nuidvalidity %d\nuidnext %d\n",
		m.validity, m.next)
	if m.fence != 0 {
		// Which holder of a shared folder wrote last; older
		// readers skip the line.
		data += fmt.Sprintf("fence %d\n", m.fence)
	}
	if err := writeFileSynced(filepath.Join(m.dir, "uidstate"), []byte(data)); err != nil {
		return err
	}
	m.savedNext = m.next
	return nil
}

// saveKeywords writes the keywords of the mailbox's messages.
func (m *mailbox) saveKeywords() error {
	kw := make(map[uint32][]string)
	for _, msg := range m.msgs {
		if len(msg.flags.keywords) > 0 {
			kw[msg.uid] = msg.flags.keywords
		}
	}
	path := filepath.Join(m.dir, "keywords")
	if len(kw) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	}
	data, err := json.Marshal(kw)
	if err != nil {
		return fmt.Errorf("store: keywords: %w", err)
	}
	return writeFileSynced(path, data)
}

// find answers the index of the message with uid, or -1.
func (m *mailbox) find(uid uint32) int {
	i, ok := slices.BinarySearchFunc(m.msgs, uid,
		func(msg *message, uid uint32) int {
			return int(int64(msg.uid) - int64(uid))
		})
	if !ok {
		return -1
	}
	return i
}

// mailbox answers the named mailbox of a locked account.
func (a *account) mailbox(name string) (*mailbox, error) {
	clean, err := CleanName(name)
	if err != nil {
		return nil, err
	}
	m := a.boxes[clean]
	if m == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoMailbox, name)
	}
	return m, nil
}
