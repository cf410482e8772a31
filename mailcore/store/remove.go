package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// removedPrefix starts the name an account folder takes while it is being
// removed; Open finishes the removal of any left by a crash.
const removedPrefix = ".removed-"

// RemoveAccount removes an account's mail for good: every mailbox and
// message under its folder. It is for the purge at the end of a deleted
// account's retention, when the directory no longer routes mail to it.
// Removing an account that has no folder is no error, so a purge that
// failed half-way may simply be run again. Sessions still watching one
// of its mailboxes see the mailbox deleted.
func (s *Store) RemoveAccount(ctx context.Context, accountID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if accountID == "" || strings.ContainsRune(accountID, 0) {
		return fmt.Errorf("%w: account id %q", ErrBadName, accountID)
	}
	if err := s.fence.check(); err != nil {
		return err
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	a := s.accounts[accountID]
	delete(s.accounts, accountID)
	s.mu.Unlock()
	if a != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, m := range a.boxes {
			m.notify(Change{Kind: Deleted})
			m.watchers = nil
		}
		a.boxes, a.loaded = nil, false
	}

	if err := s.fence.check(); err != nil {
		return err
	}
	if err := RemoveAccountFolder(s.dir, accountID); err != nil {
		return err
	}
	s.log.Info("account mail removed", "account", accountID)
	return nil
}

// RemoveAccountFolder removes an account's folder from the store in dir
// without opening the store, for a command run beside a serving process:
// Open would clear that process's spool. The account must receive no
// more mail; a process that has the account loaded keeps serving its
// index until RemoveAccount or a restart.
func RemoveAccountFolder(dir, accountID string) error {
	if accountID == "" || strings.ContainsRune(accountID, 0) {
		return fmt.Errorf("%w: account id %q", ErrBadName, accountID)
	}
	// The folder is renamed away first, and the rename synced, so that
	// a crash leaves either the whole account or a folder that Open
	// removes, never a half-removed account under its own name.
	parent := filepath.Join(dir, "accounts")
	folder := filepath.Join(parent, escapeName(accountID))
	gone := filepath.Join(parent, removedPrefix+escapeName(accountID))
	if err := os.Rename(folder, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("store: account %s: remove: %w", accountID, err)
	}
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("store: account %s: remove: %w", accountID, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("store: account %s: remove: %w", accountID, err)
	}
	return nil
}

// finishRemovals deletes account folders whose removal a crash cut short.
func finishRemovals(dir string) {
	parent := filepath.Join(dir, "accounts")
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), removedPrefix) {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}
