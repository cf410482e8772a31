package oasync

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/egretair/egret/directory"
)

// Plan statuses. Approval and apply are one transaction, so a plan goes
// from held to applied; the schema leaves room for "approved" should
// approval ever be split from apply.
const (
	PlanHeld       = "held"
	PlanApplied    = "applied"
	PlanSuperseded = "superseded"
)

// ErrPlanNotFound is answered for a plan id that does not exist.
var ErrPlanNotFound = errors.New("oasync: no such plan")

// ErrPlanNotHeld is matched by the error answered when approving a plan
// that is no longer held: applied already, or superseded.
var ErrPlanNotHeld = errors.New("oasync: plan is not held")

// Plan is an import the safety valve held back, kept in the table
// oa_plans with its input, so that it can be shown and approved later.
type Plan struct {
	ID        string    `gorm:"primaryKey" json:"id"`
	CreatedAt time.Time `json:"created_at"`
	// Source is the kind of input: snapshot, changes or pull.
	Source string `json:"source"`
	// Actor is who sent the input, as the change log names it.
	Actor string `json:"actor"`
	// Status is held, applied or superseded.
	Status string `json:"status"`
	// InputDigest is the SHA-256 of the input, in hex.
	InputDigest string `json:"input_digest"`
	// InputGz is the input, gzip-compressed.
	InputGz []byte `gorm:"column:input_gz" json:"-"`
	// ReportJSON is the Report of the held import.
	ReportJSON string `gorm:"column:report" json:"-"`
	// AccountsDisabled is how many accounts the held plan disables.
	AccountsDisabled int        `json:"accounts_disabled"`
	DecidedAt        *time.Time `json:"decided_at,omitempty"`
	DecidedBy        string     `json:"decided_by,omitempty"`
}

// TableName tells gorm the table's name.
func (Plan) TableName() string { return "oa_plans" }

// Report decodes the report of the held import.
func (p *Plan) Report() (*Report, error) {
	var r Report
	if err := json.Unmarshal([]byte(p.ReportJSON), &r); err != nil {
		return nil, fmt.Errorf("oasync: plan %s: report: %w", p.ID, err)
	}
	return &r, nil
}

// PlanChangedError refuses an approval because the directory changed
// since the plan was held, so that applying its input now would disable
// accounts the plan did not list. The plan is superseded; importing the
// input again (or a dry run) shows what it would do now.
type PlanChangedError struct {
	PlanID string
	// Unlisted are the accounts the input would now disable that the
	// held plan did not list.
	Unlisted []DisabledAccount
}

func (e *PlanChangedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "oasync: plan %s no longer matches the directory: applying it now would "+
		"also disable %d account(s) it did not list", e.PlanID, len(e.Unlisted))
	for i, a := range e.Unlisted {
		if i == 5 {
			b.WriteString(", …")
			break
		}
		sep := " ("
		if i > 0 {
			sep = ", "
		}
		fmt.Fprintf(&b, "%s%s", sep, a.Address)
		if i == len(e.Unlisted)-1 {
			b.WriteString(")")
		}
	}
	b.WriteString("; nothing changed and the plan is superseded; import the input again to review a new plan")
	return b.String()
}

// hold stores the plan of an import that the safety valve stopped. A
// plan of the same kind and input that is held already is answered
// instead of a second one; older held plans of a snapshot or a pull are
// superseded, since the new input replaces theirs.
func hold(tx *gorm.DB, j job, rep *Report, actor string, now time.Time) (*Plan, error) {
	var same Plan
	err := tx.Where("status = ? AND source = ? AND input_digest = ?", PlanHeld, j.kind, rep.Source.Digest).
		Order("created_at DESC").Take(&same).Error
	if err == nil {
		return &same, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("oasync: find held plan: %w", err)
	}

	p := &Plan{
		ID:               directory.NewID(),
		CreatedAt:        now,
		Source:           j.kind,
		Actor:            actor,
		Status:           PlanHeld,
		InputDigest:      rep.Source.Digest,
		AccountsDisabled: rep.Accounts.Disabled,
	}
	if p.InputGz, err = compress(j.data); err != nil {
		return nil, err
	}
	held := *rep
	held.Held, held.PlanID = true, p.ID
	b, err := json.Marshal(held)
	if err != nil {
		return nil, fmt.Errorf("oasync: plan report: %w", err)
	}
	p.ReportJSON = string(b)
	if err := supersede(tx, j.kind, now, p.ID); err != nil {
		return nil, err
	}
	if err := tx.Create(p).Error; err != nil {
		return nil, fmt.Errorf("oasync: store plan: %w", err)
	}
	return p, nil
}

// supersede marks the held plans of a snapshot or a pull made before now
// as superseded, other than keep: a later snapshot, or a later pull from
// the same cursor, carries everything theirs did. Held pages of changes
// stay held; each carries changes no other page does.
func supersede(tx *gorm.DB, kind string, now time.Time, keep string) error {
	if kind != KindSnapshot && kind != KindPull {
		return nil
	}
	err := tx.Model(&Plan{}).
		Where("status = ? AND source = ? AND created_at <= ? AND id <> ?", PlanHeld, kind, now, keep).
		Updates(map[string]any{"status": PlanSuperseded, "decided_at": now}).Error
	if err != nil {
		return fmt.Errorf("oasync: supersede held plans: %w", err)
	}
	return nil
}

// admits checks, within the approving transaction, that the plan is still
// held and that the input, planned again now, disables no account the
// plan did not list. Fewer is fine: the approver agreed to more.
func (p *Plan) admits(tx *gorm.DB, now *Report) error {
	var cur Plan
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", p.ID).Take(&cur).Error
	if err != nil {
		return fmt.Errorf("oasync: plan %s: %w", p.ID, err)
	}
	if cur.Status != PlanHeld {
		return fmt.Errorf("%w: plan %s is %s", ErrPlanNotHeld, p.ID, cur.Status)
	}
	shown, err := cur.Report()
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(shown.DisabledAccounts))
	for _, a := range shown.DisabledAccounts {
		listed[a.AccountID] = true
	}
	var unlisted []DisabledAccount
	for _, a := range now.DisabledAccounts {
		if !listed[a.AccountID] {
			unlisted = append(unlisted, a)
		}
	}
	if len(unlisted) > 0 {
		return &PlanChangedError{PlanID: p.ID, Unlisted: unlisted}
	}
	return nil
}

// markApplied records the approval within the transaction that applies.
func (p *Plan) markApplied(tx *gorm.DB, actor string, now time.Time) error {
	err := tx.Model(&Plan{}).Where("id = ?", p.ID).Updates(map[string]any{
		"status": PlanApplied, "decided_at": now, "decided_by": actor,
	}).Error
	if err != nil {
		return fmt.Errorf("oasync: plan %s: mark applied: %w", p.ID, err)
	}
	return nil
}

// Plans answers the plans, newest first; status "" lists all of them.
func (imp *Importer) Plans(ctx context.Context, status string) ([]Plan, error) {
	var out []Plan
	q := imp.Store.DB().WithContext(ctx).Omit("input_gz", "report").Order("created_at DESC")
	if status != "" {
		q = q.Where("status = ?", status)
	}
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("oasync: list plans: %w", err)
	}
	return out, nil
}

// Plan answers one plan with its report, or ErrPlanNotFound.
func (imp *Importer) Plan(ctx context.Context, id string) (*Plan, error) {
	var p Plan
	err := imp.Store.DB().WithContext(ctx).Where("id = ?", id).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrPlanNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("oasync: plan %s: %w", id, err)
	}
	return &p, nil
}

// Approve applies a held plan. Its input is planned again against the
// directory as it is now and checked again: input that is now invalid is
// refused with an *InvalidError and the plan stays held. When the new
// plan disables only accounts the held one listed, it is applied, past
// the threshold, whatever else it changes now (other records may have
// moved on meanwhile, and the stale rule keeps a page of changes from
// rolling them back); when it would disable any other account, the
// approval is refused with a *PlanChangedError and the plan superseded.
// A plan that is not held answers an error matching ErrPlanNotHeld.
func (imp *Importer) Approve(ctx context.Context, id string, opts Options) (*Report, error) {
	p, err := imp.Plan(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Status != PlanHeld {
		return nil, fmt.Errorf("%w: plan %s is %s", ErrPlanNotHeld, p.ID, p.Status)
	}
	data, err := decompress(p.InputGz)
	if err != nil {
		return nil, fmt.Errorf("oasync: plan %s: input: %w", p.ID, err)
	}
	rep, err := imp.run(ctx, job{kind: p.Source, data: data, opts: opts, approve: p})
	var changed *PlanChangedError
	if errors.As(err, &changed) && !opts.DryRun {
		now := time.Now().UTC()
		e := imp.Store.DB().WithContext(ctx).Model(&Plan{}).
			Where("id = ? AND status = ?", p.ID, PlanHeld).
			Updates(map[string]any{"status": PlanSuperseded, "decided_at": now})
		if e.Error != nil {
			return nil, errors.Join(err, fmt.Errorf("oasync: supersede plan %s: %w", p.ID, e.Error))
		}
	}
	if err != nil {
		return nil, err
	}
	rep.PlanID = p.ID
	return rep, nil
}

func compress(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("oasync: compress input: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("oasync: compress input: %w", err)
	}
	return buf.Bytes(), nil
}

func decompress(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(zr)
}
