// Package goazidentity holds the Go clients built on azidentity, the
// Azure SDK for Go's credentials; client.yaml declares them.
package goazidentity

import "github.com/idharness/idharness/clients"

func init() {
	clients.RegisterGo("azidentity-mi", newAzidentityMI)
	clients.RegisterGo("azidentity-default", newAzidentityDefault)
	clients.RegisterGo("azidentity-wi", newAzidentityWI)
}
