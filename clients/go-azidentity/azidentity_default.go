package goazidentity

import (
	"github.com/idharness/idharness/clients"

	"fmt"
	"net/http"
	"os"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// newAzidentityDefault is azidentity's DefaultAzureCredential, the chain
// most applications use. In IMDS mode its managed identity part first
// probes IMDS with a request lacking the Metadata header and a 1 s
// timeout, and only asks for a token once something answered; that probe
// is counted in Result.Requests. It selects a user-assigned identity only
// by client ID, read from AZURE_CLIENT_ID, so an --identity naming a
// client ID must match that variable (cmd/probe sets it when unset).
func newAzidentityDefault(o clients.Options, hc *http.Client) (clients.Client, error) {
	switch o.Identity.Kind {
	case clients.ByObjectID, clients.ByResourceID:
		return nil, fmt.Errorf("azidentity-default selects a user-assigned identity only by client ID (AZURE_CLIENT_ID), not by %s; use --identity client_id=… or another client", o.Identity.Kind)
	case clients.ByClientID:
		if got := os.Getenv("AZURE_CLIENT_ID"); got != o.Identity.Value {
			return nil, fmt.Errorf("azidentity-default reads the identity from AZURE_CLIENT_ID, which is %q, not %q: set AZURE_CLIENT_ID=%s", got, o.Identity.Value, o.Identity.Value)
		}
	default:
		if got := os.Getenv("AZURE_CLIENT_ID"); got != "" && o.Mode != clients.ModeWorkloadIdentity {
			return nil, fmt.Errorf("azidentity-default would use the user-assigned identity AZURE_CLIENT_ID=%s, not the system-assigned one: unset AZURE_CLIENT_ID or use --identity client_id=%s", got, got)
		}
	}
	cred, err := newDefault(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: hc},
		DisableInstanceDiscovery: o.DisableInstanceDiscovery,
	})
	if err != nil {
		return nil, fmt.Errorf("azidentity.NewDefaultAzureCredential: %w", err)
	}
	return &azCredential{cred: cred}, nil
}

// dacEnvMu serializes DefaultAzureCredential construction, which reads
// AZURE_TOKEN_CREDENTIALS from the process environment.
var dacEnvMu sync.Mutex

// newDefault builds a DefaultAzureCredential limited to its production
// credentials (environment, workload identity, managed identity), so that
// it never runs az, azd or PowerShell on a developer's machine; with that
// limit it still probes IMDS before its first token request.
func newDefault(o *azidentity.DefaultAzureCredentialOptions) (*azidentity.DefaultAzureCredential, error) {
	dacEnvMu.Lock()
	defer dacEnvMu.Unlock()
	prev, had := os.LookupEnv("AZURE_TOKEN_CREDENTIALS")
	if err := os.Setenv("AZURE_TOKEN_CREDENTIALS", "prod"); err != nil {
		return nil, err
	}
	defer func() {
		if had {
			_ = os.Setenv("AZURE_TOKEN_CREDENTIALS", prev)
		} else {
			_ = os.Unsetenv("AZURE_TOKEN_CREDENTIALS")
		}
	}()
	return azidentity.NewDefaultAzureCredential(o)
}
