//go:build tools

// Package tools pins the command this wrapper module builds.
package tools

import _ "carvel.dev/kapp/cmd/kapp"
