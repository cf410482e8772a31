package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/egretair/egret/directory"
)

// codeConflict answers a change that clashes with the directory: a login
// or address taken, a unit that is not empty, a move into a cycle.
const codeConflict = "conflict"

// maxLifecycleBody bounds the body of a lifecycle call. The largest
// valid one, a new user with every field at its widest, is under 8 KiB.
const maxLifecycleBody = 64 << 10

// lifecycleRoutes registers the account-lifecycle API: org units,
// users' accounts, aliases and the audit trail.
func (s *Server) lifecycleRoutes(mux *routeMux) {
	const read, write = directory.ScopeDirectoryRead, directory.ScopeDirectoryWrite

	mux.Handle("POST /api/v1/orgunits", s.scoped(write, s.createUnit))
	mux.Handle("PATCH /api/v1/orgunits/{id}", s.scoped(write, s.updateUnit))
	mux.Handle("POST /api/v1/orgunits/{id}/move", s.scoped(write, s.moveUnit))
	mux.Handle("DELETE /api/v1/orgunits/{id}", s.scoped(write, s.deleteUnit))

	mux.Handle("POST /api/v1/users", s.scoped(write, s.createUser))
	mux.Handle("PATCH /api/v1/users/{id}", s.scoped(write, s.updateUser))
	mux.Handle("DELETE /api/v1/users/{id}", s.scoped(write, s.deleteUser))
	mux.Handle("POST /api/v1/users/{id}/address", s.scoped(write, s.changeAddress))
	mux.Handle("POST /api/v1/users/{id}/move", s.scoped(write, s.moveUser))
	mux.Handle("POST /api/v1/users/{id}/disable", s.scoped(write, s.disableUser))
	mux.Handle("POST /api/v1/users/{id}/enable", s.scoped(write, s.enableUser))
	mux.Handle("POST /api/v1/users/{id}/restore", s.scoped(write, s.restoreUser))
	mux.Handle("GET /api/v1/users/{id}/aliases", s.scoped(read, s.listAliases))
	mux.Handle("POST /api/v1/users/{id}/aliases", s.scoped(write, s.addAlias))
	mux.Handle("DELETE /api/v1/users/{id}/aliases/{address}", s.scoped(write, s.removeAlias))

	mux.Handle("GET /api/v1/audit", s.scoped(directory.ScopeAuditRead, s.audit))
}

// lifecycle answers the Lifecycle the handlers use.
func (s *Server) lifecycle() *directory.Lifecycle {
	if s.Lifecycle != nil {
		return s.Lifecycle
	}
	l := &directory.Lifecycle{Store: s.Store, Log: s.Log}
	if s.Importer != nil {
		l.Domain = s.Importer.Domain
	}
	return l
}

// decodeBody reads a lifecycle call's JSON object into dst. Unknown
// fields, a second value after the object, a body over the limit and
// values of the wrong type are refused, each answered here with the
// field named where there is one; the caller stops when it answers false.
// An empty body reads as {} when empty is allowed.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, empty bool) bool {
	body := http.MaxBytesReader(w, r.Body, maxLifecycleBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) && empty {
		return true
	}
	if err == nil {
		// Anything but white space after the object is a second value.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("data after the JSON object")
		}
	}
	if err == nil {
		return true
	}

	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("body larger than %d bytes", maxLifecycleBody))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, codeBadRequest, "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, codeBadRequest, "body is truncated JSON")
	case errors.As(err, &syntax):
		writeError(w, http.StatusBadRequest, codeBadRequest,
			fmt.Sprintf("body is not JSON: %v at byte %d", syntax, syntax.Offset))
	case errors.As(err, &typ):
		if typ.Field == "" {
			writeError(w, http.StatusBadRequest, codeBadRequest, "body: want a JSON object, not "+typ.Value)
			break
		}
		writeFieldError(w, http.StatusBadRequest, codeBadRequest, typ.Field,
			fmt.Sprintf("%s: want a JSON %s, not %s", typ.Field, jsonKind(typ.Type.Kind()), typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeFieldError(w, http.StatusBadRequest, codeBadRequest, field, "unknown field "+strconvQuote(field))
	default:
		writeError(w, http.StatusBadRequest, codeBadRequest, "body: "+err.Error())
	}
	return false
}

// jsonKind names a Go kind as JSON calls it.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Int32:
		return "whole number from -2147483648 to 2147483647"
	}
	return "number"
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// fieldDetails names the input field at fault, and the records in the
// way for a conflict.
type fieldDetails struct {
	Field   string             `json:"field"`
	Holders []directory.Holder `json:"holders,omitempty"`
}

func writeFieldError(w http.ResponseWriter, status int, code, field, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{
		Code: code, Message: msg, Details: fieldDetails{Field: field},
	}})
}

// writeLifecycleError answers for an error of a lifecycle call.
func (s *Server) writeLifecycleError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *directory.FieldError
	var ce *directory.ConflictError
	switch {
	case errors.As(err, &fe):
		writeFieldError(w, http.StatusUnprocessableEntity, codeInvalid, fe.Field, fe.Error())
	case errors.As(err, &ce):
		writeJSON(w, http.StatusConflict, errorBody{Error: errorDetail{
			Code: codeConflict, Message: ce.Error(),
			Details: fieldDetails{Field: ce.Field, Holders: ce.Holders},
		}})
	default:
		s.writeStoreError(w, r, err)
	}
}
