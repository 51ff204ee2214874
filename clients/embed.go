package clients

import (
	"embed"
	"sync"
)

// files holds every program's folder: the declarations, and the sources
// and lock files a program is prepared from, so that the idharness binary
// can prepare and build any client without a checkout. Patterns name file
// types rather than folders, so that a new program's folder needs no edit
// here unless it brings a new kind of file; build output (node_modules,
// target, .venv) is never matched.
//
//go:embed */client.yaml */*.sh */*.py */*.txt */*.mjs */*.json */pom.xml */src
var files embed.FS

// builtin is the registry of the shipped programs, loaded once.
var builtin = sync.OnceValues(func() (*Registry, error) { return NewRegistry(files) })

// Builtin returns the registry of the programs shipped under clients/,
// with the Go constructors of the packages imported so far (import
// clients/all for every Go client).
func Builtin() (*Registry, error) { return builtin() }
