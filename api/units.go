package api

import (
	"net/http"

	"github.com/egretair/egret/directory"
)

func (s *Server) createUnit(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name      string `json:"name"`
		Kind      string `json:"kind"`
		ParentID  string `json:"parent_id"`
		OAID      string `json:"oa_id"`
		SortOrder int32  `json:"sort_order"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	u, err := s.lifecycle().CreateUnit(r.Context(), directory.NewUnit{
		Name: body.Name, Kind: body.Kind, ParentID: body.ParentID,
		OAID: body.OAID, SortOrder: int(body.SortOrder),
	})
	s.answerUnit(w, r, u, err, http.StatusCreated)
}

func (s *Server) updateUnit(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name      *string `json:"name"`
		SortOrder *int32  `json:"sort_order"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	ch := directory.UnitChange{Name: body.Name}
	if body.SortOrder != nil {
		n := int(*body.SortOrder)
		ch.SortOrder = &n
	}
	u, err := s.lifecycle().UpdateUnit(r.Context(), r.PathValue("id"), ch)
	s.answerUnit(w, r, u, err, http.StatusOK)
}

func (s *Server) moveUnit(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ParentID string `json:"parent_id"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	u, err := s.lifecycle().MoveUnit(r.Context(), r.PathValue("id"), body.ParentID)
	s.answerUnit(w, r, u, err, http.StatusOK)
}

func (s *Server) deleteUnit(w http.ResponseWriter, r *http.Request) {
	if err := s.lifecycle().DeleteUnit(r.Context(), r.PathValue("id")); err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// answerUnit answers a unit as GET /orgunits/{id} shows it.
func (s *Server) answerUnit(w http.ResponseWriter, r *http.Request, u *directory.OrgUnit, err error, status int) {
	if err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	v, err := s.Store.GetOrgUnit(r.Context(), u.ID)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, status, v)
}
