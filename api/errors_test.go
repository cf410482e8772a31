package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
)

// TestPrimaryDownIsWordedByMethod checks the 503 answered while the
// primary database is down: a read is told the primary database is
// unavailable, a write that nothing was changed, both to try again.
func TestPrimaryDownIsWordedByMethod(t *testing.T) {
	s := &Server{}
	down := fmt.Errorf("%w: 127.0.0.1:3306: connection refused", directory.ErrUnavailable)
	for _, c := range []struct {
		method    string
		want, not string
	}{
		{http.MethodGet, "the directory's primary database is unavailable; try again", "nothing was changed"},
		{http.MethodHead, "the directory's primary database is unavailable; try again", "nothing was changed"},
		{http.MethodPost, "nothing was changed; try again", "unavailable"},
		{http.MethodPatch, "nothing was changed; try again", "unavailable"},
		{http.MethodDelete, "nothing was changed; try again", "unavailable"},
	} {
		t.Run(c.method, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeStoreError(w, httptest.NewRequest(c.method, "/api/v1/users/x", nil), down)
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("answer is not JSON: %v: %s", err, w.Body)
			}
			msg := body.Error.Message
			if w.Code != http.StatusServiceUnavailable || body.Error.Code != codeUnavailable ||
				w.Header().Get("Retry-After") == "" {
				t.Fatalf("status %d, Retry-After %q, %+v; want 503 unavailable with Retry-After",
					w.Code, w.Header().Get("Retry-After"), body.Error)
			}
			if !strings.Contains(msg, c.want) || strings.Contains(msg, c.not) {
				t.Fatalf("message %q; want it to say %q and not %q", msg, c.want, c.not)
			}
		})
	}
}
