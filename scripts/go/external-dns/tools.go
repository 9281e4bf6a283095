//go:build tools

// Package tools pins the command this wrapper module builds.
package tools

import _ "sigs.k8s.io/external-dns"
