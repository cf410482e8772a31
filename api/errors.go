package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/egretair/egret/directory"
)

// Error codes, stable for callers to branch on.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeInvalid      = "invalid"
	codeTooLarge     = "too_large"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details carries structured context where there is some, such as
	// the elements of a refused OA snapshot.
	Details any `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

// writeStoreError answers for an error from the directory: not found is
// the caller's 404, anything else is logged and answered as a temporary
// failure, since it is almost always the database being unreachable.
// While the primary database is down (directory.ErrUnavailable) the
// answer says to try again: for a read (GET, HEAD) that the directory's
// primary database is unavailable, for a write that nothing was changed.
func (s *Server) writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, directory.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
	case errors.Is(err, directory.ErrBadFilter):
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
	case errors.Is(err, directory.ErrUnavailable):
		s.log().Warn("request refused: primary database down", slog.String("path", r.URL.Path),
			slog.Any("err", err))
		msg := "the primary database is down; nothing was changed; try again shortly"
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			msg = "the directory's primary database is unavailable; try again shortly"
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, msg)
	default:
		s.log().Error("request failed", slog.String("path", r.URL.Path), slog.Any("err", err))
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the directory is not available; try again")
	}
}
