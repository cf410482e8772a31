package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrFenced means another node has taken over this store folder: its
// fence number is higher than this node's. The change was not made; the
// client should try again, and will reach the new holder.
var ErrFenced = errors.New("store: another node serves this store now")

// ErrWrongFolder means the folder is not the store the back's lease
// names: it has no store id, or another one. Nothing was written to it.
var ErrWrongFolder = errors.New("store: not the store folder of this back")

// ErrFenceFile means the folder's fence file is missing or cannot be
// read, so this node cannot tell whether another one serves the folder.
var ErrFenceFile = errors.New("store: fence file missing or damaged")

// idFile is the name, in the store folder, of the file that holds the
// store's id: written once, by the first node that serves the folder.
const idFile = "store-id"

// fenceFile is the name, in the store folder, of the file that holds the
// fence number of the node serving the folder.
const fenceFile = "fence"

// Fence is what a store shared by the members of a back node checks
// before every change (see package lease).
type Fence struct {
	// Number is this node's fence, from its lease.
	Number uint64
	// Holding answers nil while this node may write under Number; nil
	// means always.
	Holding func() error
	// Lost is called once, when the folder is found to hold a higher
	// fence; nil for none.
	Lost func()
	// Broken is called once, when the fence file is found missing or
	// damaged (the error wraps ErrFenceFile); the store refuses every
	// operation from then on, as after Stand. nil for none.
	Broken func(error)
	// StoreID is the store id the lease records; "" when it records
	// none yet, and Take then adopts the folder's id, or gives the
	// folder one.
	StoreID string
}

// fenceGuard is the check of a shared store.
type fenceGuard struct {
	path string

	mu     sync.Mutex
	fence  Fence
	id     string      // the folder's store id, once taken
	seen   os.FileInfo // the fence file as last read
	folder uint64      // its number
	lost   bool        // standing by: every operation is refused
}

// OpenShared answers a store over dir, a folder that the members of a
// back node serve in turn. It refuses every operation with ErrFenced
// until Take, and reads and clears nothing before: the folder may be in
// another member's use.
func OpenShared(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", dir, err)
	}
	return &Store{
		dir:      dir,
		log:      log,
		accounts: make(map[string]*account),
		fence:    &fenceGuard{path: filepath.Join(dir, fenceFile), lost: true},
	}, nil
}

// Take makes this node the folder's writer under f.Number, which must
// be no lower than the number in the folder's fence file. It first
// checks that the folder is the store the lease names: its store-id
// file must hold f.StoreID (ErrWrongFolder), and its fence file must be
// readable when present (ErrFenceFile); until both hold, nothing in the
// folder is touched. With f.StoreID empty the folder keeps the id it
// has, or is given a new one (see ID).
//
// The number is then written into the fence file, synced with its
// folder, before anything else: from then on a former writer's next
// operation fails. Take then clears what the former writer left half
// done (the spool: its deliveries were never acknowledged) and forgets
// every index held in memory, so each account is read again from disk,
// with the former writer's changes.
//
// Every later operation first checks that the file holds no higher
// number than f.Number and that f.Holding answers nil. A store that
// finds a higher number stands by for good, as after Stand, and calls
// f.Lost; one that finds the file gone or damaged stands by and calls
// f.Broken.
func (s *Store) Take(f Fence) error {
	g := s.fence
	if g == nil {
		return errors.New("store: Take on a store not opened with OpenShared")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	id, err := readStoreID(s.dir)
	if err != nil {
		return err
	}
	switch {
	case f.StoreID != "" && id == "":
		return fmt.Errorf("%w: %s has no %s file, and the lease names store %s: "+
			"is the shared volume mounted there? Mount it; to serve this folder "+
			"instead on purpose, clear the store id of the back's lease (see the "+
			"runbook)", ErrWrongFolder, s.dir, idFile, f.StoreID)
	case f.StoreID != "" && id != f.StoreID:
		return fmt.Errorf("%w: %s holds store %s, and the lease names store %s: "+
			"is the right volume mounted there? To serve this folder instead on "+
			"purpose, clear the store id of the back's lease (see the runbook)",
			ErrWrongFolder, s.dir, id, f.StoreID)
	}
	if n, err := readFence(g.path); err != nil {
		return err
	} else if n > f.Number {
		return fmt.Errorf("%w: folder fence %d, this node's %d", ErrFenced, n, f.Number)
	}
	for _, d := range []string{filepath.Join(s.dir, "tmp"),
		filepath.Join(s.dir, "accounts")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("store: create %s: %w", d, err)
		}
	}
	if id == "" {
		if id, err = makeStoreID(s.dir); err != nil {
			return err
		}
	}
	if err := writeFence(s.dir, f.Number); err != nil {
		return err
	}
	if err := recoverDir(s.dir); err != nil {
		return err
	}
	s.mu.Lock()
	s.accounts = make(map[string]*account)
	s.mu.Unlock()
	g.fence, g.id, g.seen, g.folder, g.lost = f, id, nil, 0, false
	return nil
}

// ID answers the id of the store folder, as the last Take found or
// made it; "" before.
func (s *Store) ID() string {
	if s.fence == nil {
		return ""
	}
	s.fence.mu.Lock()
	defer s.fence.mu.Unlock()
	return s.fence.id
}

// Verify checks the folder's fence file as every operation does, and
// answers the same error one would: a member holding the lease calls
// it now and then, so that it learns of a newer holder (or a damaged
// fence file) even while no client asks it anything.
func (s *Store) Verify() error {
	return s.fence.check()
}

// Stand makes the store refuse every operation with ErrFenced until
// the next Take: the node lost its lease.
func (s *Store) Stand() {
	if g := s.fence; g != nil {
		g.mu.Lock()
		g.lost = true
		g.mu.Unlock()
	}
}

// check answers ErrFenced once the folder holds a higher fence, or the
// node's lease is no longer sure, and ErrFenceFile once the fence file
// is gone or damaged. The file is read again only when its identity,
// size or time changed, so a check costs one stat.
func (g *fenceGuard) check() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lost {
		return ErrFenced
	}
	if g.fence.Holding != nil {
		if err := g.fence.Holding(); err != nil {
			return fmt.Errorf("%w: %w", ErrFenced, err)
		}
	}
	fi, err := os.Stat(g.path)
	if err == nil && (g.seen == nil || !os.SameFile(g.seen, fi) || fi.Size() != g.seen.Size() ||
		!fi.ModTime().Equal(g.seen.ModTime())) {
		var n uint64
		if n, err = readFence(g.path); err == nil {
			g.seen, g.folder = fi, n
		}
	}
	if err != nil {
		// A new holder replaces the file by a rename, never removes
		// it: the folder was changed by hand, or its volume fails.
		if !errors.Is(err, ErrFenceFile) {
			err = fmt.Errorf("%w: %s: %w; no node can tell who serves the folder, "+
				"so this one stops: the next member to take the lease writes a new "+
				"one", ErrFenceFile, g.path, err)
		}
		g.lost = true
		if g.fence.Broken != nil {
			go g.fence.Broken(err)
		}
		return err
	}
	if g.folder > g.fence.Number {
		g.lost = true
		if g.fence.Lost != nil {
			go g.fence.Lost()
		}
		return fmt.Errorf("%w: folder fence %d, this node's %d", ErrFenced, g.folder, g.fence.Number)
	}
	return nil
}

// number answers the node's fence, 0 for an unfenced store.
func (g *fenceGuard) number() uint64 {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fence.Number
}

// readFence answers the number in a fence file, 0 when there is none,
// and an error wrapping ErrFenceFile when it cannot be read or holds no
// number.
func readFence(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: read %s: %w", ErrFenceFile, path, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s holds no fence number (%q): if no member serves "+
			"this folder now, remove the file; the next member to take the lease "+
			"writes it again", ErrFenceFile, path, b)
	}
	return n, nil
}

// readStoreID answers the id in the folder's store-id file, "" when
// there is none.
func readStoreID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read %s: %w", path, err)
	}
	id := strings.TrimSpace(string(b))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: %s holds no store id (%q)", ErrWrongFolder, path, b)
	}
	return id, nil
}

// makeStoreID gives the folder a new random store id: written to a
// temporary file, synced, and linked into place, so that of two nodes
// making one at once the first wins and the other reads it.
func makeStoreID(dir string) (string, error) {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	f, err := os.CreateTemp(dir, "."+idFile+"-*")
	if err != nil {
		return "", fmt.Errorf("store: store id: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, filepath.Join(dir, idFile))
	}
	if errors.Is(err, os.ErrExist) {
		return readStoreID(dir)
	}
	if err != nil {
		return "", fmt.Errorf("store: store id: %w", err)
	}
	return id, syncDir(dir)
}

// writeFence replaces the fence file: a temporary file of its own name
// (two members may write at once), synced, renamed over the old one,
// and the folder synced, so the number survives a crash before the node
// serves under it.
func writeFence(dir string, n uint64) error {
	f, err := os.CreateTemp(dir, "."+fenceFile+"-*")
	if err != nil {
		return fmt.Errorf("store: fence: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(strconv.FormatUint(n, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, fenceFile))
	}
	if err != nil {
		return fmt.Errorf("store: fence: %w", err)
	}
	return syncDir(dir)
}
