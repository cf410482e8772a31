package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	page, perPage, ok := pageParams(w, q)
	if !ok {
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

// pageParams reads a list's page and per_page, answering 400 itself
// and false when either is out of range.
func pageParams(w http.ResponseWriter, q url.Values) (page, perPage int, ok bool) {
	page, err := intParam(q.Get("page"), 1, 1, 1<<30)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "page: "+err.Error())
		return 0, 0, false
	}
	perPage, err = intParam(q.Get("per_page"), defaultPerPage, 1, maxPerPage)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "per_page: "+err.Error())
		return 0, 0, false
	}
	return page, perPage, true
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

// findUser answers the user that the path's {id} names, as every
// /users/{id} route reads it: a person id, an OA id or a login (compared
// without regard to case), tried in that order.
func (s *Server) findUser(r *http.Request) (*directory.User, error) {
	id := r.PathValue("id")
	u, err := s.Store.GetUser(r.Context(), id)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, fmt.Errorf("%w: user %q", directory.ErrNotFound, id)
	}
	return u, err
}

// pathUser is findUser for a handler: when findUser fails, pathUser
// answers the request itself (404 for no such user, 503 while the
// database is down) and ok is false.
func (s *Server) pathUser(w http.ResponseWriter, r *http.Request) (u *directory.User, ok bool) {
	u, err := s.findUser(r)
	if err != nil {
		s.writeStoreError(w, r, err)
		return nil, false
	}
	return u, true
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	if u, ok := s.pathUser(w, r); ok {
		writeJSON(w, http.StatusOK, u)
	}
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

	u, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	if u.Account == nil {
		writeError(w, http.StatusNotFound, codeNotFound, "user "+u.ID+" has no mail account")
		return
	}
	_, err := s.Store.SetPassword(r.Context(), u.Account.ID, *body.Password)
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

// unitList is the answer of GET /api/v1/orgunits.
type unitList struct {
	OrgUnits []directory.OrgUnit `json:"orgunits"`
	Total    int64               `json:"total"`
	Page     int                 `json:"page"`
	PerPage  int                 `json:"per_page"`
}

// listOrgUnits answers one page of the top-level units (those without a
// parent), or with ?parent= (an id or OA id) of that unit's children,
// in display order. It is a list, so it may be read from a replica.
func (s *Server) listOrgUnits(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage, ok := pageParams(w, q)
	if !ok {
		return
	}
	units, total, err := s.Store.ListOrgUnits(r.Context(), q.Get("parent"), (page-1)*perPage, perPage)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, unitList{OrgUnits: units, Total: total, Page: page, PerPage: perPage})
}

func (s *Server) getOrgUnit(w http.ResponseWriter, r *http.Request) {
	v, err := s.Store.GetOrgUnit(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
