// Package scenarios holds idharness's shipped scenario files, embedded so
// that the idharness binary plays the chaos specs among them (the files
// with a spec: block) without a checkout. The files are the source:
// `idharness scenario run scenarios/FILE.yaml` plays any of them.
package scenarios

import (
	"embed"
	"io/fs"
)

//go:embed *.yaml
var files embed.FS

// FS returns the shipped scenario files.
func FS() fs.FS { return files }
