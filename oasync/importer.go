package oasync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/egretair/egret/directory"
)

// DefaultHoldingName is the name of the holding unit when the Importer
// gives none.
const DefaultHoldingName = "待分配人员"

// Importer applies OA data to the directory.
type Importer struct {
	// Store is the directory written to.
	Store *directory.Store
	// Domain is the mail domain new addresses are made in.
	Domain string
	// HoldingName names the holding unit when it is created;
	// DefaultHoldingName when empty.
	HoldingName string
	// Log receives a line per import; slog.Default() when nil.
	Log *slog.Logger
}

// Options adjust one import.
type Options struct {
	// DryRun plans and reports without writing anything.
	DryRun bool
}

// importMu serialises the imports of this process: two imports planned
// against the same state would create the same records twice.
var importMu sync.Mutex

// errDryRun rolls back the transaction of a dry run.
var errDryRun = errors.New("oasync: dry run")

// ImportSnapshot reads a full EKP export from r and makes the directory
// hold it, as the package comment describes. Invalid input is refused
// whole with an *InvalidError; other errors are the database's, and
// nothing was written either.
func (imp *Importer) ImportSnapshot(ctx context.Context, r io.Reader, opts Options) (*Report, error) {
	start := time.Now()
	if imp.Store == nil {
		return nil, errors.New("oasync: importer has no store")
	}
	domain := strings.ToLower(strings.TrimSpace(imp.Domain))
	if domain == "" || strings.Contains(domain, "@") {
		return nil, fmt.Errorf("oasync: importer has no valid mail domain (%q)", imp.Domain)
	}
	holdingName := imp.HoldingName
	if holdingName == "" {
		holdingName = DefaultHoldingName
	}
	log := imp.Log
	if log == nil {
		log = slog.Default()
	}

	data, err := readInput(r)
	if err != nil {
		return nil, err
	}
	d, err := decode(data)
	if err != nil {
		log.Warn("oa snapshot refused", "error", err)
		return nil, err
	}

	importMu.Lock()
	defer importMu.Unlock()

	params := mysqlParams
	if imp.Store.Dialect() == "sqlite" {
		params = sqliteParams
	}

	var pl *plan
	now := time.Now().UTC().Truncate(time.Microsecond)
	err = imp.Store.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		st, err := loadState(tx)
		if err != nil {
			return err
		}
		pl, err = planSnapshot(d, st, domain, holdingName, now)
		if err != nil {
			return err
		}
		if opts.DryRun {
			return errDryRun
		}
		return pl.apply(tx, params)
	})
	var invalid *InvalidError
	switch {
	case errors.Is(err, errDryRun):
	case errors.As(err, &invalid):
		log.Warn("oa snapshot refused", "problems", len(invalid.Problems), "error", err)
		return nil, err
	case err != nil:
		log.Error("oa snapshot import failed", "error", err)
		return nil, fmt.Errorf("oasync: import snapshot: %w", err)
	}

	rep := &pl.report
	rep.DryRun = opts.DryRun
	rep.DurationMS = time.Since(start).Milliseconds()
	msg := "oa snapshot imported"
	if opts.DryRun {
		msg = "oa snapshot planned (dry run)"
	}
	log.Info(msg,
		"elements", rep.Elements,
		"people_created", rep.Person.Created,
		"people_updated", rep.Person.Updated,
		"people_disabled", rep.Person.Disabled,
		"people_enabled", rep.Person.Enabled,
		"accounts_created", rep.Accounts.Created,
		"warnings", len(rep.Warnings),
		"changes", len(pl.changes),
		"duration_ms", rep.DurationMS)
	return rep, nil
}
