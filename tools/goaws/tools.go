//go:build tools

// Package tools pins goaws, the SQS server that internal/testinfra starts
// for tests. The build constraint keeps this file out of every build; the
// blank import keeps the requirement in go.mod. Build the server with
//
//	cd tools/goaws && go build -o "$(go env GOPATH)/bin/goaws" github.com/Admiral-Piett/goaws/app/cmd
package tools

import _ "github.com/Admiral-Piett/goaws/app/cmd"
