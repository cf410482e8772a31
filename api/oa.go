package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/egretair/egret/oasync"
)

const defaultMaxSnapshot = 256 << 20

// importSnapshot takes a full EKP export (the envelope or a bare array,
// gzipped or not) and answers the same report as `egret oa import`.
func (s *Server) importSnapshot(w http.ResponseWriter, r *http.Request) {
	dryRun := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, "dry_run: want true or false")
			return
		}
		dryRun = b
	}
	limit := s.MaxSnapshotBytes
	if limit <= 0 {
		limit = defaultMaxSnapshot
	}
	body := http.MaxBytesReader(w, r.Body, limit)

	report, err := s.Importer.ImportSnapshot(r.Context(), body, oasync.Options{DryRun: dryRun})
	var invalid *oasync.InvalidError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("snapshot larger than %d bytes", limit))
	case errors.Is(err, oasync.ErrMalformed):
		// Malformed input is also an InvalidError; it is the caller's
		// syntax, not the content, that is wrong.
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: errorDetail{
			Code:    codeInvalid,
			Message: "snapshot refused, nothing changed: " + invalid.Error(),
			Details: invalid.Problems,
		}})
	case err != nil:
		s.log().Error("snapshot import failed", slog.Any("err", err))
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "import failed, nothing changed; try again")
	default:
		writeJSON(w, http.StatusOK, report)
	}
}
