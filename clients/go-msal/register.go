// Package gomsal holds the Go clients built on MSAL Go; client.yaml
// declares them.
package gomsal

import "github.com/idharness/idharness/clients"

func init() {
	clients.RegisterGo("msal-mi", newMSALMI)
	clients.RegisterGo("msal-wi", newMSALWI)
}
