package store

import (
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
}

// fenceGuard is the check of a shared store.
type fenceGuard struct {
	path string

	mu     sync.Mutex
	fence  Fence
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
// be no lower than the number in the folder's fence file. The number is
// written into the file, synced with its folder, before anything else:
// from then on a former writer's next operation fails. Take then clears
// what the former writer left half done (the spool: its deliveries were
// never acknowledged) and forgets every index held in memory, so each
// account is read again from disk, with the former writer's changes.
//
// Every later operation first checks that the file holds no higher
// number than f.Number and that f.Holding answers nil. A store that
// finds a higher number stands by for good, as after Stand, and calls
// f.Lost.
func (s *Store) Take(f Fence) error {
	g := s.fence
	if g == nil {
		return errors.New("store: Take on a store not opened with OpenShared")
	}
	for _, d := range []string{filepath.Join(s.dir, "tmp"),
		filepath.Join(s.dir, "accounts")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("store: create %s: %w", d, err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n, err := readFence(g.path); err != nil {
		return err
	} else if n > f.Number {
		return fmt.Errorf("%w: folder fence %d, this node's %d", ErrFenced, n, f.Number)
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
	g.fence, g.seen, g.folder, g.lost = f, nil, 0, false
	return nil
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
// node's lease is no longer sure. The file is read again only when its
// identity, size or time changed, so a check costs one stat.
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
	if err != nil {
		return fmt.Errorf("%w: fence file: %w", ErrFenced, err)
	}
	if g.seen == nil || !os.SameFile(g.seen, fi) || fi.Size() != g.seen.Size() ||
		!fi.ModTime().Equal(g.seen.ModTime()) {
		n, err := readFence(g.path)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrFenced, err)
		}
		g.seen, g.folder = fi, n
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

// readFence answers the number in a fence file, 0 when there is none.
func readFence(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read %s: %w", path, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: %s holds no fence number: %w", path, err)
	}
	return n, nil
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
