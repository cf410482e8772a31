package oasync

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Defaults of the pull connector.
const (
	DefaultPageSize = 500
	DefaultOverlap  = 2 * time.Second
	// maxPageSize bounds how far a page grows to get past a run of rows
	// that share one alterTime.
	maxPageSize = 100_000
	// maxPages bounds one run, against a server that never ends a page
	// short.
	maxPages = 10_000
	// maxPageBytes bounds one answer of the export service.
	maxPageBytes = 256 << 20
)

// returnOrgType asks EKP's export service for every kind of element egret
// keeps. The service takes it as a JSON array written in a string.
const returnOrgType = `[{"type":"org"},{"type":"dept"},{"type":"post"},{"type":"person"},{"type":"group"}]`

// Puller pulls the changes of the OA's organisation from EKP's export
// service (getUpdatedElements, in its REST form) and applies them as one
// page of changes per run.
//
// A run asks for the elements altered since its cursor, count at a time,
// in ascending alterTime. The service answers the elements whose
// alterTime is at or after beginTimeStamp, so each next request begins
// at the last alterTime of the page before, inclusive: rows that share
// that alterTime and did not fit are fetched then, and the ones fetched
// twice are the same. When a whole page shares one alterTime the page
// size is doubled, since beginning there again would fetch the same page.
// The run ends at the first page shorter than count.
//
// Everything fetched is applied in one transaction, as ImportChanges
// applies a page, and the cursor moves in that transaction: a run that
// fails halfway, or is held by the safety valve, leaves the cursor where
// it was, and the next run fetches the same rows again. The new cursor
// is the last alterTime seen less Overlap, so that a row EKP commits late
// with an earlier alterTime is still fetched; rows fetched again are
// equal to what egret holds (applied, changing nothing) or older (stale,
// ignored).
type Puller struct {
	Importer *Importer
	// URL is the export service's address.
	URL string
	// Token, when set, is sent as the Authorization header: as it is if
	// it holds a space ("Basic ..."), else as a bearer token.
	Token string
	// PageSize is the count asked for per request; DefaultPageSize when 0.
	PageSize int
	// Overlap is how far before the last alterTime seen the next run
	// begins; DefaultOverlap when 0.
	Overlap time.Duration
	// Client makes the requests; one with a one-minute timeout when nil.
	Client *http.Client
	// Name names the cursor; "ekp" when empty.
	Name string
}

// PullReport says what a run of the pull connector did.
type PullReport struct {
	// Pages and Rows count the requests made and the rows answered, rows
	// fetched twice included; Elements is the distinct elements applied.
	Pages    int `json:"pages"`
	Rows     int `json:"rows"`
	Elements int `json:"elements"`
	// Begin is the cursor the run began at; Cursor the one kept after it
	// (the same when nothing was applied).
	Begin  string `json:"begin"`
	Cursor string `json:"cursor"`
	// Report is the import's report; nil when nothing was fetched.
	Report *Report `json:"report,omitempty"`
}

// cursorRow is the pull connector's position, in the table oa_cursors.
type cursorRow struct {
	Name           string `gorm:"primaryKey"`
	BeginTimeStamp string
	UpdatedAt      time.Time
}

func (cursorRow) TableName() string { return "oa_cursors" }

func (p *Puller) name() string { return cmp.Or(p.Name, "ekp") }

// Cursor answers the beginTimeStamp the next run starts at, "" when the
// connector has never completed a run.
func (p *Puller) Cursor(ctx context.Context) (string, error) {
	var c cursorRow
	err := p.Importer.Store.DB().WithContext(ctx).Where("name = ?", p.name()).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("oasync: read pull cursor: %w", err)
	}
	return c.BeginTimeStamp, nil
}

// fetched is one element of a run, kept by id.
type fetched struct {
	alter string
	raw   json.RawMessage
}

// Run pulls once, as the type's comment describes. On error nothing was
// applied and the cursor stays; the error says which page failed.
func (p *Puller) Run(ctx context.Context) (*PullReport, error) {
	if p.Importer == nil || p.URL == "" {
		return nil, errors.New("oasync: puller has no importer or no URL")
	}
	begin, err := p.Cursor(ctx)
	if err != nil {
		return nil, err
	}
	pr := &PullReport{Begin: begin, Cursor: begin}
	count := cmp.Or(p.PageSize, DefaultPageSize)

	byID := map[string]fetched{}
	from := begin
	for {
		if pr.Pages == maxPages {
			return nil, fmt.Errorf("oasync: pull: more than %d pages in one run", maxPages)
		}
		rows, err := p.fetch(ctx, from, count)
		if err != nil {
			return nil, fmt.Errorf("oasync: pull page %d (beginTimeStamp %q, count %d) from EKP: %w",
				pr.Pages+1, from, count, err)
		}
		pr.Pages++
		pr.Rows += len(rows)

		last := from
		for _, r := range rows {
			id, alter := rowKey(r)
			last = max(last, alter)
			if old, ok := byID[id]; ok && old.alter > alter {
				continue
			}
			byID[id] = fetched{alter, r}
		}
		if len(rows) < count {
			break
		}
		if last <= from {
			// A full page of one alterTime: asking from there again would
			// answer the same page.
			if count *= 2; count > maxPageSize {
				return nil, fmt.Errorf("oasync: pull: more than %d rows share alterTime %q",
					maxPageSize, from)
			}
			continue
		}
		from = last
	}

	pr.Elements = len(byID)
	if len(byID) == 0 {
		return pr, nil
	}
	els := make([]fetched, 0, len(byID))
	maxAlter := ""
	now := p.Importer.now()
	for _, f := range byID {
		els = append(els, f)
		// A row dated past the clock does not move the cursor: the
		// cursor would pass every row still to come (see maxAhead).
		if !aheadOfClock(f.alter, now) {
			maxAlter = max(maxAlter, f.alter)
		}
	}
	slices.SortStableFunc(els, func(a, b fetched) int {
		return cmp.Or(cmp.Compare(a.alter, b.alter), bytes.Compare(a.raw, b.raw))
	})
	raws := make([]json.RawMessage, len(els))
	for i, f := range els {
		raws[i] = f.raw
	}
	data, err := json.Marshal(raws)
	if err != nil {
		return nil, fmt.Errorf("oasync: pull: %w", err)
	}

	next := max(begin, p.backOff(maxAlter))
	rep, err := p.Importer.run(ctx, job{kind: KindPull, data: data, commit: func(tx *gorm.DB) error {
		return saveCursor(tx, p.name(), next)
	}})
	if err != nil {
		return nil, err
	}
	pr.Report = rep
	if !rep.Held && !rep.DryRun {
		pr.Cursor = next
	}
	return pr, nil
}

// backOff answers the cursor Overlap before an alter time.
func (p *Puller) backOff(alter string) string {
	t, err := time.Parse(alterTimeLayout, alter)
	if err != nil {
		return ""
	}
	return t.Add(-cmp.Or(p.Overlap, DefaultOverlap)).Format(alterTimeLayout)
}

func saveCursor(tx *gorm.DB, name, begin string) error {
	row := cursorRow{Name: name, BeginTimeStamp: begin, UpdatedAt: time.Now().UTC()}
	err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("oasync: save pull cursor: %w", err)
	}
	return nil
}

// rowKey reads a row's id and alterTime, normalised; what cannot be read
// is left for the import to refuse or warn about.
func rowKey(raw json.RawMessage) (id, alter string) {
	var el struct {
		ID        scalar `json:"id"`
		AlterTime string `json:"alterTime"`
	}
	json.Unmarshal(raw, &el)
	alter, _ = normAlterTime(strings.TrimSpace(el.AlterTime))
	return strings.TrimSpace(string(el.ID)), alter
}

// fetch asks the export service for one page.
func (p *Puller) fetch(ctx context.Context, begin string, count int) ([]json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{
		"returnOrgType":  returnOrgType,
		"count":          count,
		"beginTimeStamp": begin,
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	if t := p.Token; t != "" {
		if !strings.Contains(t, " ") {
			t = "Bearer " + t
		}
		req.Header.Set("Authorization", t)
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, truncate(string(data), 200))
	}
	if len(data) > maxPageBytes {
		return nil, fmt.Errorf("answer larger than %d MiB", maxPageBytes>>20)
	}

	var env struct {
		ReturnState json.Number     `json:"returnState"`
		Message     json.RawMessage `json:"message"`
		Count       *int            `json:"count"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("answer is not EKP's envelope: %w", err)
	}
	if env.ReturnState.String() != fmt.Sprint(ekpSuccess) {
		return nil, fmt.Errorf("EKP answered returnState %s: %s", env.ReturnState, truncate(string(env.Message), 200))
	}
	msg := []byte(env.Message)
	if len(msg) > 0 && msg[0] == '"' {
		var s string
		if err := json.Unmarshal(msg, &s); err != nil {
			return nil, fmt.Errorf("message: %w", err)
		}
		msg = []byte(s)
	}
	var rows []json.RawMessage
	if len(bytes.TrimSpace(msg)) > 0 && string(bytes.TrimSpace(msg)) != "null" {
		if err := json.Unmarshal(msg, &rows); err != nil {
			return nil, fmt.Errorf("message is not an array of elements: %w", err)
		}
	}
	if env.Count != nil && *env.Count != len(rows) {
		return nil, fmt.Errorf("the envelope says %d elements but message holds %d", *env.Count, len(rows))
	}
	if len(rows) > count {
		return nil, fmt.Errorf("asked for %d elements, got %d", count, len(rows))
	}
	return rows, nil
}

// Loop runs the connector every interval until ctx ends, first at once.
// A failed run is logged and tried again at the next tick; the cursor
// has not moved, so nothing is lost.
func (p *Puller) Loop(ctx context.Context, interval time.Duration) {
	log := p.Importer.logger()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		pr, err := p.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("oa pull failed; the cursor stays", slog.String("url", p.URL), slog.Any("err", err))
		case pr.Report != nil && pr.Report.Held:
			log.Warn("oa pull held for approval", slog.String("plan", pr.Report.PlanID),
				slog.Int("accounts_disabled", pr.Report.Accounts.Disabled))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
