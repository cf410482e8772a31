package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/oasync"
)

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Kind        string `json:"kind"`
		Login       string `json:"login"`
		DisplayName string `json:"display_name"`
		OAID        string `json:"oa_id"`
		EmployeeNo  string `json:"employee_no"`
		UnitID      string `json:"unit_id"`
		Address     string `json:"address"`
		Mobile      string `json:"mobile"`
		WorkPhone   string `json:"work_phone"`
		Title       string `json:"title"`
		QuotaBytes  int64  `json:"quota_bytes"`
		Password    string `json:"password"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	u, err := s.lifecycle().CreateUser(r.Context(), directory.NewUser{
		Kind: body.Kind, Login: body.Login, DisplayName: body.DisplayName,
		OAID: body.OAID, EmployeeNo: body.EmployeeNo, UnitID: body.UnitID,
		Address: body.Address, MobileRaw: body.Mobile, Mobile: oasync.NormMobile(body.Mobile),
		WorkPhone: body.WorkPhone, Title: body.Title, QuotaBytes: body.QuotaBytes,
		Password: body.Password,
	})
	s.answerUser(w, r, u, err, http.StatusCreated)
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		DisplayName *string `json:"display_name"`
		Mobile      *string `json:"mobile"`
		WorkPhone   *string `json:"work_phone"`
		Title       *string `json:"title"`
		QuotaBytes  *int64  `json:"quota_bytes"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	ch := directory.UserChange{
		DisplayName: body.DisplayName, MobileRaw: body.Mobile,
		WorkPhone: body.WorkPhone, Title: body.Title, QuotaBytes: body.QuotaBytes,
	}
	if body.Mobile != nil {
		ch.Mobile = oasync.NormMobile(*body.Mobile)
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	u, err := s.lifecycle().UpdateUser(r.Context(), who.ID, ch)
	s.answerUser(w, r, u, err, http.StatusOK)
}

func (s *Server) changeAddress(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Address string `json:"address"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	u, err := s.lifecycle().ChangeAddress(r.Context(), who.ID, body.Address)
	s.answerUser(w, r, u, err, http.StatusOK)
}

func (s *Server) moveUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		UnitID string `json:"unit_id"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	u, err := s.lifecycle().MoveUser(r.Context(), who.ID, body.UnitID)
	s.answerUser(w, r, u, err, http.StatusOK)
}

func (s *Server) disableUser(w http.ResponseWriter, r *http.Request) { s.setEnabled(w, r, false) }

func (s *Server) enableUser(w http.ResponseWriter, r *http.Request) { s.setEnabled(w, r, true) }

func (s *Server) setEnabled(w http.ResponseWriter, r *http.Request, on bool) {
	var body struct{}
	if !decodeBody(w, r, &body, true) {
		return
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	u, err := s.lifecycle().SetEnabled(r.Context(), who.ID, on)
	s.answerUser(w, r, u, err, http.StatusOK)
}

// deleteUser deletes the user's account for the retention period, which
// ?retention_days= may set for this call.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	var retention time.Duration
	if v := r.URL.Query().Get("retention_days"); v != "" {
		maxDays := int(directory.MaxRetention / (24 * time.Hour))
		days, err := strconv.Atoi(v)
		if err != nil || days < 1 || days > maxDays {
			writeFieldError(w, http.StatusBadRequest, codeBadRequest, "retention_days",
				"retention_days: want a whole number of days from 1 to "+strconv.Itoa(maxDays))
			return
		}
		retention = time.Duration(days) * 24 * time.Hour
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	u, err := s.lifecycle().DeleteUser(r.Context(), who.ID, retention)
	s.answerUser(w, r, u, err, http.StatusOK)
}

func (s *Server) restoreUser(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if !decodeBody(w, r, &body, true) {
		return
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	u, err := s.lifecycle().RestoreUser(r.Context(), who.ID)
	s.answerUser(w, r, u, err, http.StatusOK)
}

func (s *Server) listAliases(w http.ResponseWriter, r *http.Request) {
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	list, err := s.lifecycle().Aliases(r.Context(), who.ID)
	if err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"aliases": list})
}

func (s *Server) addAlias(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Address string `json:"address"`
	}
	if !decodeBody(w, r, &body, false) {
		return
	}
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	al, err := s.lifecycle().AddAlias(r.Context(), who.ID, body.Address)
	if err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, al)
}

func (s *Server) removeAlias(w http.ResponseWriter, r *http.Request) {
	who, ok := s.pathUser(w, r)
	if !ok {
		return
	}
	err := s.lifecycle().RemoveAlias(r.Context(), who.ID, r.PathValue("address"))
	if err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// answerUser answers a user as GET /users/{id} shows them.
func (s *Server) answerUser(w http.ResponseWriter, r *http.Request, u *directory.User, err error, status int) {
	if err != nil {
		s.writeLifecycleError(w, r, err)
		return
	}
	writeJSON(w, status, u)
}
