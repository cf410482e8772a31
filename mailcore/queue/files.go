package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// syncDir makes the entries of a folder durable: a rename or removal
// inside it is on disk once this returns.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("queue: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("queue: sync %s: %w", dir, err)
	}
	return nil
}

// writeSynced writes r to a new file at path and syncs it. It answers
// the bytes written and their SHA-256. On error the file is removed.
func writeSynced(path string, r io.Reader) (int64, string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("queue: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return 0, "", fmt.Errorf("queue: write %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// lockFile takes an exclusive flock(2) on path without waiting. The lock
// ends with the process, so a killed server leaves none behind.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, ErrLocked
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("queue: lock %s: %w", path, err)
	}
	return f, nil
}

// checkedReader passes a message file through and, at its end, checks
// its size and digest against the record. A mismatch is answered as an
// error in place of io.EOF, so a transport never finishes a transaction
// with a message that is not whole.
type checkedReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	size int64
	sum  string
	// bad is the check that failed, once one has.
	bad error
}

// newCheckedReader checks r against size and the hex SHA-256 sum.
func newCheckedReader(r io.Reader, size int64, sum string) *checkedReader {
	return &checkedReader{r: r, h: sha256.New(), size: size, sum: sum}
}

// Read reads and, at the end, checks.
func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	switch {
	case c.bad != nil:
	case c.n > c.size:
		c.bad = fmt.Errorf("%w: message longer than its record says", errDamaged)
	case err == io.EOF && c.n != c.size:
		c.bad = fmt.Errorf("%w: message holds %d bytes, record says %d",
			errDamaged, c.n, c.size)
	case err == io.EOF && hex.EncodeToString(c.h.Sum(nil)) != c.sum:
		c.bad = fmt.Errorf("%w: message digest differs from its record", errDamaged)
	}
	if c.bad != nil {
		return n, c.bad
	}
	return n, err
}

// moveAside moves a file that failed its checks into damaged/, for an
// operator to look at. A file that cannot be moved is removed, so it is
// never taken for a message again.
func (q *Queue) moveAside(name string) {
	from := filepath.Join(q.dir, "spool", name)
	to := filepath.Join(q.dir, "damaged", name)
	if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.Remove(from)
	}
}
