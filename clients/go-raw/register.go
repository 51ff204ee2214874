// Package goraw holds the raw client: a hand-written request on plain
// net/http for wire checks; client.yaml declares it.
package goraw

import "github.com/idharness/idharness/clients"

func init() { clients.RegisterGo("raw", newRaw) }
