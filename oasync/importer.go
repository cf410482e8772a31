package oasync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// DisableThreshold is how many accounts one import may disable
	// before it is held for approval: 0 means DefaultDisableThreshold,
	// a negative number turns the safety valve off.
	DisableThreshold int
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

func (imp *Importer) now() time.Time {
	if imp.Now != nil {
		return imp.Now().UTC()
	}
	return time.Now().UTC()
}

// DefaultDisableThreshold is the number of accounts an import may
// disable without approval. It is the figure Microsoft Entra Connect
// ships with for its "prevent accidental deletes" guard, which operators
// of directory sync already know.
const DefaultDisableThreshold = 500

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
// nothing was written either. A snapshot that would disable more
// accounts than the threshold is held: the report says Held and names
// the plan, and nothing else is written.
func (imp *Importer) ImportSnapshot(ctx context.Context, r io.Reader, opts Options) (*Report, error) {
	data, err := readInput(r)
	if err != nil {
		return nil, err
	}
	return imp.run(ctx, job{kind: KindSnapshot, data: data, opts: opts})
}

// Kinds of input, as reports, plans and the change log's actor name them.
const (
	KindSnapshot = "snapshot"
	KindChanges  = "changes"
	KindPull     = "pull"
)

// job is one import to run.
type job struct {
	kind string
	data []byte
	opts Options
	// approve is the held plan being approved, or nil.
	approve *Plan
	// commit runs within the transaction after a successful apply; the
	// pull connector keeps its cursor with it.
	commit func(tx *gorm.DB) error
}

// run decodes, plans, and applies or holds one input, all in one
// transaction.
func (imp *Importer) run(ctx context.Context, j job) (*Report, error) {
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
	log := imp.logger()
	full := j.kind == KindSnapshot

	d, err := decode(j.data)
	if err != nil {
		log.Warn("oa input refused", "kind", j.kind, "error", err)
		return nil, err
	}
	src := Source{Kind: j.kind, Digest: digest(j.data), TimeStamp: d.timeStamp}
	actor := imp.actor(ctx, j, src)

	importMu.Lock()
	defer importMu.Unlock()

	params := mysqlParams
	if imp.Store.Dialect() == "sqlite" {
		params = sqliteParams
	}

	var pl *plan
	var held *Plan
	now := imp.now().Truncate(time.Microsecond)
	txCtx := directory.WithActor(ctx, actor)
	err = imp.Store.DB().WithContext(txCtx).Transaction(func(tx *gorm.DB) error {
		st, err := loadState(tx)
		if err != nil {
			return err
		}
		var stale []Warning
		if !full {
			stale = dropStale(d, st, now)
		}
		pl, err = planSnapshot(d, st, domain, holdingName, now, full)
		if err != nil {
			return err
		}
		pl.report.Stale = len(stale)
		pl.report.Elements += len(stale)
		pl.report.Warnings = append(stale, pl.report.Warnings...)
		pl.report.Source = src
		pl.report.Threshold = imp.threshold()
		pl.report.OverThreshold = pl.report.Threshold >= 0 &&
			pl.report.Accounts.Disabled > pl.report.Threshold

		switch {
		case j.opts.DryRun:
			return errDryRun
		case j.approve != nil:
			if err := j.approve.admits(tx, &pl.report); err != nil {
				return err
			}
		case pl.report.OverThreshold:
			held, err = hold(tx, j, &pl.report, actor, now)
			return err
		}
		if err := pl.apply(tx, params); err != nil {
			return err
		}
		if err := imp.Store.AssignHomes(tx, pl.createdAccounts()); err != nil {
			return err
		}
		if j.approve != nil {
			if err := j.approve.markApplied(tx, actor, now); err != nil {
				return err
			}
		}
		if err := supersede(tx, j.kind, now, ""); err != nil {
			return err
		}
		if j.commit != nil {
			return j.commit(tx)
		}
		return nil
	})
	var invalid *InvalidError
	var changed *PlanChangedError
	switch {
	case errors.Is(err, errDryRun):
	case errors.As(err, &invalid):
		log.Warn("oa input refused", "kind", j.kind, "problems", len(invalid.Problems), "error", err)
		return nil, err
	case errors.As(err, &changed), errors.Is(err, ErrPlanNotHeld):
		log.Warn("oa plan not approved", "plan", j.approve.ID, "error", err)
		return nil, err
	case err != nil:
		log.Error("oa import failed", "kind", j.kind, "error", err)
		return nil, fmt.Errorf("oasync: import %s: %w", j.kind, err)
	}

	rep := &pl.report
	rep.DryRun = j.opts.DryRun
	rep.DurationMS = time.Since(start).Milliseconds()
	msg := "oa " + j.kind + " imported"
	switch {
	case j.opts.DryRun:
		msg = "oa " + j.kind + " planned (dry run)"
	case held != nil:
		rep.Held, rep.PlanID = true, held.ID
		msg = "oa " + j.kind + " held for approval"
	}
	log.Info(msg,
		"source_digest", src.Digest,
		"elements", rep.Elements,
		"stale", rep.Stale,
		"people_created", rep.Person.Created,
		"people_updated", rep.Person.Updated,
		"people_disabled", rep.Person.Disabled,
		"people_enabled", rep.Person.Enabled,
		"accounts_created", rep.Accounts.Created,
		"accounts_disabled", rep.Accounts.Disabled,
		"plan", rep.PlanID,
		"warnings", len(rep.Warnings),
		"changes", len(pl.changes),
		"duration_ms", rep.DurationMS)
	return rep, nil
}

func (imp *Importer) logger() *slog.Logger {
	if imp.Log != nil {
		return imp.Log
	}
	return slog.Default()
}

// threshold answers the number of accounts an import may disable
// without approval, -1 for no limit.
func (imp *Importer) threshold() int {
	switch {
	case imp.DisableThreshold < 0:
		return -1
	case imp.DisableThreshold == 0:
		return DefaultDisableThreshold
	}
	return imp.DisableThreshold
}

// actor names who makes the changes of an import in the change log: the
// caller from ctx (an API key, an OS user), then the OA input, by kind
// and the first 16 hex digits of its digest, so that every row can be
// traced to the page or snapshot it came from. An approval adds the plan.
func (imp *Importer) actor(ctx context.Context, j job, src Source) string {
	a := "oa:" + j.kind + "@" + src.Digest[:16]
	if j.approve != nil {
		a += "/approved:" + j.approve.ID
	}
	if caller := directory.ActorFrom(ctx); caller != "system" {
		a = caller + "/" + a
	}
	return a
}

// digest answers the SHA-256 of data in hex.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
