package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// floorPrefix names the marker that keeps UIDNEXT derivable from the
// files alone. uidstate holds UIDNEXT, but uidstate is index data and may
// be lost; without the marker, a mailbox whose highest UIDs were expunged
// would count UIDNEXT from its highest remaining file, and hand those UIDs
// out again under the same UIDVALIDITY, which RFC 9051 §2.3.1.1 forbids:
// a client that cached them would show the wrong message.
const floorPrefix = "uidfloor."

// recordFloor makes sure the mailbox folder holds the marker
// uidfloor.<UIDNEXT>, synced, before a message file leaves the mailbox.
// Older markers are removed; a stale one left by a crash is harmless, as
// the highest is taken.
func (m *mailbox) recordFloor() error {
	name := floorPrefix + strconv.FormatUint(uint64(m.next), 10)
	path := filepath.Join(m.dir, name)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store: mailbox %q: %w", m.name, err)
	}
	f.Close()
	// The marker must be on disk before the file it stands for goes.
	if err := syncDir(m.dir); err != nil {
		return err
	}
	entries, _ := os.ReadDir(m.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), floorPrefix) && e.Name() != name {
			os.Remove(filepath.Join(m.dir, e.Name()))
		}
	}
	return nil
}

// readFloor answers the highest UIDNEXT that a marker in dir records, or
// zero.
func readFloor(dir string) uint32 {
	entries, _ := os.ReadDir(dir)
	var floor uint32
	for _, e := range entries {
		v, ok := strings.CutPrefix(e.Name(), floorPrefix)
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			floor = max(floor, uint32(n))
		}
	}
	return floor
}
