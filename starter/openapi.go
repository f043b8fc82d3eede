package starter

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the HTTP API described in OpenAPI 3.1 (GET /v1/openapi.json); a test checks it
// names every route of the router, and nothing else.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
