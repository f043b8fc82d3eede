package journey

import _ "embed"

// Schema is the JSON Schema of journey documents, for editor completion and validation
// (YAML editors: `# yaml-language-server: $schema=<url of journey/schema.json>`).
// journey/schema_test.go checks it against the Go types.
//
//go:embed schema.json
var Schema []byte
