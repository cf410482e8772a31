package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/mailview"
	"github.com/egretair/egret/oasync"
	"github.com/egretair/egret/sso"
)

// Server holds what the HTTP handlers need. Its zero value is not usable:
// Store and Importer must be set.
type Server struct {
	Store    *directory.Store
	Importer *oasync.Importer
	Log      *slog.Logger
	// MaxSnapshotBytes bounds an OA snapshot upload; zero means 256 MiB.
	MaxSnapshotBytes int64
	// Lifecycle makes the account-lifecycle changes; nil means one over
	// Store with the Importer's mail domain and the default retention.
	Lifecycle *directory.Lifecycle

	// SSO issues login tokens; nil answers 503 on its routes.
	SSO *sso.Service
	// WebURL is the web mailbox's base URL, put in login links.
	WebURL string
	// Web serves the web mailbox under /mail/; nil serves none.
	Web http.Handler
	// Mail reads mailbox facts; nil answers 503 on its route.
	Mail *mailview.Reader
	// Facts, when not nil, reads mailbox facts in Mail's place: a
	// front asks the account's back for them.
	Facts FactsReader

	// state is starting, ready or stopping.
	state atomic.Int32
}

const (
	stateStarting int32 = iota
	stateReady
	stateStopping
)

// SetReady marks the node ready: /healthz answers 200 only when every
// listener of the node is up. SetReady(false) on a ready node means it is
// shutting down.
func (s *Server) SetReady(ok bool) {
	if ok {
		s.state.Store(stateReady)
	} else {
		s.state.CompareAndSwap(stateReady, stateStopping)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Handler answers the HTTP handler for every route.
func (s *Server) Handler() http.Handler {
	mux := newRouteMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
	mux.Handle("GET /metrics", s.metrics())

	mux.Handle("GET /api/v1/users", s.scoped("directory:read", s.listUsers))
	mux.Handle("GET /api/v1/users/{id}", s.scoped("directory:read", s.getUser))
	mux.Handle("POST /api/v1/users/{id}/password", s.scoped("directory:write", s.setPassword))
	mux.Handle("GET /api/v1/orgunits", s.scoped("directory:read", s.listOrgUnits))
	mux.Handle("GET /api/v1/orgunits/{id}", s.scoped("directory:read", s.getOrgUnit))
	mux.Handle("POST /api/v1/oa/snapshot", s.scoped("oa:sync", s.importSnapshot))
	s.oaRoutes(mux)
	s.lifecycleRoutes(mux)
	s.listRoutes(mux)
	s.oidcClientRoutes(mux)
	s.ssoRoutes(mux)

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	switch s.state.Load() {
	case stateStarting:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	case stateStopping:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	}
	if err := s.Store.Ping(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type keyContext struct{}

// scoped wraps h so that it runs only for a request with a live API key
// that grants scope.
func (s *Server) scoped(scope string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="egret"`)
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing Authorization: Bearer API key")
			return
		}
		key, err := s.Store.VerifyAPIKey(r.Context(), secret)
		if errors.Is(err, directory.ErrBadKey) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="egret", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "unknown or revoked API key")
			return
		}
		if err != nil {
			s.writeStoreError(w, r, err)
			return
		}
		if !key.HasScope(scope) {
			writeError(w, http.StatusForbidden, codeForbidden, "the API key lacks scope "+scope)
			return
		}
		ctx := context.WithValue(r.Context(), keyContext{}, key)
		ctx = directory.WithActor(ctx, "api:"+key.Name)
		h(w, r.WithContext(ctx))
	})
}

// bearer answers the token of an "Authorization: Bearer" header. The
// scheme name is case-insensitive (RFC 7235 §2.1).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
