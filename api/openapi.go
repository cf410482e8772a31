package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 description of /api/v1, kept beside the
// handlers it describes; a test checks that every route is in it.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}
