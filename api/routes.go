package api

import (
	"net/http"
	"slices"
)

// routeMux is a ServeMux that remembers the patterns registered on it, so
// that Routes can list them and a test can hold the OpenAPI document and
// the scopes to every route, present and future.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux {
	return &routeMux{ServeMux: http.NewServeMux()}
}

// Handle registers h for pattern and remembers the pattern.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern and remembers the pattern.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Routes answers the pattern of every route Handler serves ("GET
// /api/v1/users/{id}"), in the order they are registered.
func (s *Server) Routes() []string {
	if m, ok := s.Handler().(*routeMux); ok {
		return slices.Clone(m.patterns)
	}
	return nil
}
