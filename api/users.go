package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/egretair/egret/directory"
)

// Paging limits of list endpoints.
const (
	defaultPerPage = 50
	maxPerPage     = 500
)

// userList is the answer of GET /api/v1/users.
type userList struct {
	Users   []directory.User `json:"users"`
	Total   int64            `json:"total"`
	Page    int              `json:"page"`
	PerPage int              `json:"per_page"`
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err := intParam(q.Get("page"), 1, 1, 1<<30)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "page: "+err.Error())
		return
	}
	perPage, err := intParam(q.Get("per_page"), defaultPerPage, 1, maxPerPage)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "per_page: "+err.Error())
		return
	}

	users, total, err := s.Store.ListUsers(r.Context(), directory.UserFilter{
		Status:  q.Get("status"),
		OrgUnit: q.Get("orgunit"),
		Login:   q.Get("login"),
		Kind:    q.Get("kind"),
		Offset:  (page - 1) * perPage,
		Limit:   perPage,
	})
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, userList{Users: users, Total: total, Page: page, PerPage: perPage})
}

// intParam parses an optional whole-number query parameter within
// [lo, hi], answering def when it is absent.
func intParam(v string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a whole number from %d to %d, not %q", lo, hi, v)
	}
	return n, nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.Store.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// maxPasswordBody bounds the body of a password change.
const maxPasswordBody = 4 << 10

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Password *string `json:"password"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPasswordBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Password == nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, `want a JSON object {"password": "..."}`)
		return
	}

	u, err := s.Store.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	if u.Account == nil {
		writeError(w, http.StatusNotFound, codeNotFound, "user "+u.ID+" has no mail account")
		return
	}
	_, err = s.Store.SetPassword(r.Context(), u.Account.ID, *body.Password)
	if errors.Is(err, directory.ErrWeakPassword) {
		writeError(w, http.StatusUnprocessableEntity, codeInvalid, err.Error())
		return
	}
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	s.log().Info("password changed", slog.String("account", u.Account.ID), slog.String("via", "api"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getOrgUnit(w http.ResponseWriter, r *http.Request) {
	v, err := s.Store.GetOrgUnit(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
