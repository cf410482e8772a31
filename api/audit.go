package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/egretair/egret/directory"
)

// auditPage is the answer of GET /api/v1/audit. Next, when not zero, is
// the "after" of the following page.
type auditPage struct {
	Entries []directory.AuditEntry `json:"entries"`
	Next    int64                  `json:"next,omitempty"`
}

// audit pages through the change log: who changed what, when, from what
// to what.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := directory.AuditFilter{
		EntityID: q.Get("entity_id"),
		Unit:     q.Get("unit"),
		Entity:   q.Get("entity"),
		Actor:    q.Get("actor"),
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeFieldError(w, http.StatusBadRequest, codeBadRequest, t.name,
					t.name+": want an RFC 3339 time such as 2026-03-01T08:00:00Z")
				return
			}
			*t.dst = at
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeFieldError(w, http.StatusBadRequest, codeBadRequest, "after", "after: want a sequence number")
			return
		}
		f.After = n
	}
	limit, err := intParam(q.Get("limit"), 100, 1, directory.MaxAuditPage)
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, codeBadRequest, "limit", "limit: "+err.Error())
		return
	}
	f.Limit = limit

	entries, next, err := s.Store.Audit(r.Context(), f)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, auditPage{Entries: entries, Next: next})
}
