package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEntry is one change as the audit trail shows it: who made it,
// when, and the record before and after.
type AuditEntry struct {
	Seq      int64           `json:"seq"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Entity   string          `json:"entity"`
	EntityID string          `json:"entity_id"`
	Op       string          `json:"op"`
	Before   json.RawMessage `json:"before"`
	After    json.RawMessage `json:"after"`
}

// AuditFilter selects changes. Empty fields select everything.
type AuditFilter struct {
	// Since and Until bound the time of the change: Since <= at < Until.
	Since, Until time.Time
	// EntityID selects the changes of one record (a person, an account,
	// a unit).
	EntityID string
	// Unit selects the changes of a unit, and of the people that were
	// in it before or after the change, and of the accounts of the
	// people in it now.
	Unit string
	// Entity selects a kind of record ("unit", "person", "account").
	Entity string
	// Actor selects one actor ("api:oa", "cli:root").
	Actor string
	// After pages on: only changes with a greater sequence number.
	After int64
	// Limit bounds the page; zero means 100.
	Limit int
}

// MaxAuditPage bounds one page of the audit trail.
const MaxAuditPage = 1000

// Audit answers one page of the changes f selects, oldest first, and the
// After of the next page (0 when this page is the last).
func (s *Store) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, int64, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxAuditPage)

	q := s.db.WithContext(ctx).Model(&Change{}).Where("seq > ?", f.After)
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", f.Until.UTC())
	}
	if f.EntityID != "" {
		q = q.Where("entity_id = ?", f.EntityID)
	}
	if f.Entity != "" {
		q = q.Where("entity = ?", f.Entity)
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Unit != "" {
		unit, err := s.findUnit(ctx, f.Unit)
		if err != nil {
			return nil, 0, err
		}
		// Records name their unit as "unit_id":"<id>" in their JSON,
		// which the encoder writes without spaces. Not yet indexed: on a
		// long log, bound the search by time.
		pat := `%"unit_id":"` + unit.ID + `"%`
		q = q.Where("((entity = ? AND entity_id = ?) OR data LIKE ? OR before_data LIKE ?"+
			" OR (entity = ? AND entity_id IN (SELECT a.id FROM accounts a"+
			" JOIN people p ON p.id = a.person_id WHERE p.unit_id = ?)))",
			EntityUnit, unit.ID, pat, pat, EntityAccount, unit.ID)
	}

	var rows []Change
	if err := q.Order("seq").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("directory: read audit trail: %w", err)
	}
	var next int64
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].Seq
	}
	out := make([]AuditEntry, len(rows))
	for i, c := range rows {
		out[i] = AuditEntry{
			Seq: c.Seq, At: c.At.UTC(), Actor: c.Actor, Entity: c.Entity,
			EntityID: c.EntityID, Op: c.Op, After: rawJSON(c.Data),
		}
		if c.Before != nil {
			out[i].Before = rawJSON(*c.Before)
		} else {
			out[i].Before = rawJSON("null")
		}
	}
	return out, next, nil
}

// rawJSON passes stored JSON on as it is, or as a string when it is not
// JSON, so that one bad row does not break the page.
func rawJSON(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}
