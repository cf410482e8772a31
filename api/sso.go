package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/sso"
	"github.com/egretair/egret/sso/guard"
)

// ssoRoutes registers the sign-in routes: login tokens for the OA, the
// lockouts operators look at, and the web mailbox under /mail/ when
// the node serves one.
func (s *Server) ssoRoutes(mux *routeMux) {
	mux.Handle("POST /api/v1/sso/tokens", s.scoped(directory.ScopeSSOIssue, s.issueToken))
	mux.Handle("GET /api/v1/security/lockouts", s.scoped(directory.ScopeAuditRead, s.listLockouts))
	mux.Handle("GET /api/v1/users/{id}/mailbox", s.scoped(directory.ScopeMailboxRead, s.mailboxFacts))
	if s.Web != nil {
		mux.Handle("/mail/", s.Web)
	}
}

// notConfigured answers for a route whose part of egret this node does
// not run.
func notConfigured(w http.ResponseWriter, what string) {
	writeError(w, http.StatusServiceUnavailable, codeUnavailable, what+" is not configured on this node")
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	if s.SSO == nil {
		notConfigured(w, "single sign-on")
		return
	}
	var body struct {
		User       string `json:"user"`
		ReturnPath string `json:"return_path"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || strings.TrimSpace(body.User) == "" {
		writeError(w, http.StatusBadRequest, codeBadRequest,
			`want a JSON object {"user": "<id, login or address>", "return_path": "/mail/..."}`)
		return
	}
	tok, err := s.SSO.IssueToken(r.Context(), body.User, body.ReturnPath)
	switch {
	case errors.Is(err, sso.ErrBadReturnPath):
		writeError(w, http.StatusBadRequest, codeInvalid, err.Error())
		return
	case errors.Is(err, directory.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "no enabled account is "+body.User)
		return
	case err != nil:
		s.writeStoreError(w, r, err)
		return
	}
	s.log().Info("login token issued", slog.String("account", tok.AccountID),
		slog.String("actor", directory.ActorFrom(r.Context())))
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":      tok.Secret,
		"account_id": tok.AccountID,
		"login_url":  strings.TrimSuffix(s.WebURL, "/") + "/mail/sso?t=" + url.QueryEscape(tok.Secret),
		"expires_at": tok.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

func (s *Server) listLockouts(w http.ResponseWriter, r *http.Request) {
	locks, err := guard.Lockouts(r.Context(), s.Store.DB(), time.Now())
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"lockouts": locks})
}
