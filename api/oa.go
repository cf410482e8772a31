package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/egretair/egret/oasync"
)

const defaultMaxSnapshot = 256 << 20

// codePlanConflict answers an approval of a plan that is no longer held,
// or that no longer matches the directory.
const codePlanConflict = "conflict"

// router is what the OA routes are registered with.
type router interface {
	Handle(pattern string, h http.Handler)
}

// oaRoutes registers the OA sync routes other than the snapshot import.
func (s *Server) oaRoutes(mux router) {
	mux.Handle("POST /api/v1/oa/changes", s.scoped("oa:sync", s.importChanges))
	mux.Handle("GET /api/v1/oa/plans", s.scoped("oa:sync", s.listPlans))
	mux.Handle("GET /api/v1/oa/plans/{id}", s.scoped("oa:sync", s.getPlan))
	mux.Handle("POST /api/v1/oa/plans/{id}/approve", s.scoped("oa:approve", s.approvePlan))
}

// importSnapshot takes a full EKP export (the envelope or a bare array,
// gzipped or not) and answers the same report as `egret oa import`.
func (s *Server) importSnapshot(w http.ResponseWriter, r *http.Request) {
	s.importOA(w, r, "snapshot", s.Importer.ImportSnapshot)
}

// importChanges takes a page of EKP changes and answers the same report
// as `egret oa apply`.
func (s *Server) importChanges(w http.ResponseWriter, r *http.Request) {
	s.importOA(w, r, "page", s.Importer.ImportChanges)
}

type importFunc func(context.Context, io.Reader, oasync.Options) (*oasync.Report, error)

// importOA runs one import and answers its report: 200 when applied (or
// planned, for a dry run), 202 when the safety valve held it.
func (s *Server) importOA(w http.ResponseWriter, r *http.Request, what string, run importFunc) {
	dryRun, ok := dryRunParam(w, r)
	if !ok {
		return
	}
	limit := s.MaxSnapshotBytes
	if limit <= 0 {
		limit = defaultMaxSnapshot
	}
	body := http.MaxBytesReader(w, r.Body, limit)

	report, err := run(r.Context(), body, oasync.Options{DryRun: dryRun})
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("%s larger than %d bytes", what, limit))
	case err != nil:
		s.writeImportError(w, what, err)
	case report.Held:
		writeJSON(w, http.StatusAccepted, report)
	default:
		writeJSON(w, http.StatusOK, report)
	}
}

func dryRunParam(w http.ResponseWriter, r *http.Request) (dryRun, ok bool) {
	v := r.URL.Query().Get("dry_run")
	if v == "" {
		return false, true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "dry_run: want true or false")
		return false, false
	}
	return b, true
}

// writeImportError answers for an import or approval that failed;
// nothing was changed in any case.
func (s *Server) writeImportError(w http.ResponseWriter, what string, err error) {
	var invalid *oasync.InvalidError
	var changed *oasync.PlanChangedError
	switch {
	case errors.Is(err, oasync.ErrMalformed):
		// Malformed input is also an InvalidError; it is the caller's
		// syntax, not the content, that is wrong.
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: errorDetail{
			Code:    codeInvalid,
			Message: what + " refused, nothing changed: " + invalid.Error(),
			Details: invalid.Problems,
		}})
	case errors.Is(err, oasync.ErrPlanNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
	case errors.As(err, &changed):
		writeJSON(w, http.StatusConflict, errorBody{Error: errorDetail{
			Code:    codePlanConflict,
			Message: err.Error(),
			Details: changed.Unlisted,
		}})
	case errors.Is(err, oasync.ErrPlanNotHeld):
		writeError(w, http.StatusConflict, codePlanConflict, err.Error())
	default:
		s.log().Error("oa import failed", slog.String("what", what), slog.Any("err", err))
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, what+" failed, nothing changed; try again")
	}
}

// planView is a plan as the API shows it; the full view adds the report
// with every account the plan disables.
type planView struct {
	oasync.Plan
	Report *oasync.Report `json:"report,omitempty"`
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	switch status {
	case "", oasync.PlanHeld, oasync.PlanApplied, oasync.PlanSuperseded:
	default:
		writeError(w, http.StatusBadRequest, codeBadRequest, "status: want held, applied or superseded")
		return
	}
	plans, err := s.Importer.Plans(r.Context(), status)
	if err != nil {
		s.writeImportError(w, "listing", err)
		return
	}
	out := make([]planView, len(plans))
	for i, p := range plans {
		out[i] = planView{Plan: p}
	}
	writeJSON(w, http.StatusOK, map[string]any{"plans": out})
}

func (s *Server) getPlan(w http.ResponseWriter, r *http.Request) {
	p, err := s.Importer.Plan(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeImportError(w, "plan", err)
		return
	}
	rep, err := p.Report()
	if err != nil {
		s.writeImportError(w, "plan", err)
		return
	}
	writeJSON(w, http.StatusOK, planView{Plan: *p, Report: rep})
}

// approvePlan applies a held plan, or with dry_run shows what applying it
// now would do.
func (s *Server) approvePlan(w http.ResponseWriter, r *http.Request) {
	dryRun, ok := dryRunParam(w, r)
	if !ok {
		return
	}
	rep, err := s.Importer.Approve(r.Context(), r.PathValue("id"), oasync.Options{DryRun: dryRun})
	if err != nil {
		s.writeImportError(w, "approval", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
