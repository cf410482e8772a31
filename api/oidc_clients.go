package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/sso/oidcp"
)

// oidcClientRoutes lets an operator's automation register, list and
// remove the OpenID Connect provider's clients (OpenID Connect Core
// §2; registration is by API key, not the open Dynamic Client
// Registration protocol).
func (s *Server) oidcClientRoutes(mux *routeMux) {
	mux.Handle("GET /api/v1/oidc/clients", s.scoped(directory.ScopeOIDCAdmin, s.listOIDCClients))
	mux.Handle("POST /api/v1/oidc/clients", s.scoped(directory.ScopeOIDCAdmin, s.addOIDCClient))
	mux.Handle("DELETE /api/v1/oidc/clients/{id}", s.scoped(directory.ScopeOIDCAdmin, s.removeOIDCClient))
}

// oidcClientView is a client as the API shows it: never its secret
// digest.
type oidcClientView struct {
	oidcp.Client
	Public         bool     `json:"public"`
	RedirectURIs   []string `json:"redirect_uris"`
	PostLogoutURIs []string `json:"post_logout_redirect_uris"`
	// Secret is set only in the answer to the registration.
	Secret string `json:"client_secret,omitempty"`
}

func viewOIDCClient(c oidcp.Client) oidcClientView {
	return oidcClientView{Client: c, Public: c.Public(), RedirectURIs: c.Redirects(),
		PostLogoutURIs: c.PostLogoutRedirects()}
}

func (s *Server) listOIDCClients(w http.ResponseWriter, r *http.Request) {
	cs, err := oidcp.Clients{DB: s.Store.DB()}.List(r.Context())
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	out := make([]oidcClientView, len(cs))
	for i, c := range cs {
		out[i] = viewOIDCClient(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
}

func (s *Server) addOIDCClient(w http.ResponseWriter, r *http.Request) {
	var n oidcp.NewClient
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "body: "+err.Error())
		return
	}
	c, secret, err := oidcp.Clients{DB: s.Store.DB()}.Add(r.Context(), n)
	switch {
	case errors.Is(err, oidcp.ErrClientExists):
		writeError(w, http.StatusConflict, "conflict", err.Error())
		return
	case err != nil && strings.HasPrefix(err.Error(), "oidcp: add client"):
		s.writeStoreError(w, r, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	v := viewOIDCClient(*c)
	v.Secret = secret
	s.log().Info("oidc client registered", "client", c.ID, "actor", directory.ActorFrom(r.Context()))
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) removeOIDCClient(w http.ResponseWriter, r *http.Request) {
	err := oidcp.Clients{DB: s.Store.DB()}.Remove(r.Context(), r.PathValue("id"))
	if errors.Is(err, oidcp.ErrNoClient) {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
