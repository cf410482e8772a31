package api

import (
	"net/http"

	"github.com/egretair/egret/directory"
)

// listRoutes registers the list address of org units and OA groups. The
// members of a list are not set here: they are whoever the unit or group
// holds when mail arrives.
func (s *Server) listRoutes(mux *routeMux) {
	const read, write = directory.ScopeDirectoryRead, directory.ScopeDirectoryWrite

	for _, owner := range []struct{ path, kind string }{
		{"/api/v1/orgunits/{id}/list", directory.ListOfUnit},
		{"/api/v1/groups/{id}/list", directory.ListOfGroup},
	} {
		kind := owner.kind
		mux.Handle("GET "+owner.path, s.scoped(read, func(w http.ResponseWriter, r *http.Request) {
			s.getList(w, r, kind)
		}))
		mux.Handle("PUT "+owner.path, s.scoped(write, func(w http.ResponseWriter, r *http.Request) {
			s.setList(w, r, kind)
		}))
		mux.Handle("DELETE "+owner.path, s.scoped(write, func(w http.ResponseWriter, r *http.Request) {
			s.removeList(w, r, kind)
		}))
	}
}

func (s *Server) getList(w http.ResponseWriter, r *http.Request, kind string) {
	ml, err := s.Store.GetList(r.Context(), kind, r.PathValue("id"))
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ml)
}

func (s *Server) setList(w http.ResponseWriter, r *http.Request, kind string) {
	var body struct {
		Address         string `json:"address"`
		IncludeSubunits bool   `json:"include_subunits"`
		Posting         string `json:"posting"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	ml, err := s.lifecycle().SetList(r.Context(), kind, r.PathValue("id"),
		directory.ListInput{Address: body.Address,
			IncludeSubunits: body.IncludeSubunits, Posting: body.Posting})
	if err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ml)
}

func (s *Server) removeList(w http.ResponseWriter, r *http.Request, kind string) {
	if err := s.lifecycle().RemoveList(r.Context(), kind, r.PathValue("id")); err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
