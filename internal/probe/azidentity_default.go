package probe

import (
	"fmt"
	"net/http"
	"os"

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
func newAzidentityDefault(o Options, hc *http.Client) (Client, error) {
	switch o.Identity.Kind {
	case ByObjectID, ByResourceID:
		return nil, fmt.Errorf("azidentity-default selects a user-assigned identity only by client ID (AZURE_CLIENT_ID), not by %s; use --identity client_id=… or another client", o.Identity.Kind)
	case ByClientID:
		if got := os.Getenv("AZURE_CLIENT_ID"); got != o.Identity.Value {
			return nil, fmt.Errorf("azidentity-default reads the identity from AZURE_CLIENT_ID, which is %q, not %q: set AZURE_CLIENT_ID=%s", got, o.Identity.Value, o.Identity.Value)
		}
	default:
		if got := os.Getenv("AZURE_CLIENT_ID"); got != "" && o.Mode != ModeWorkloadIdentity {
			return nil, fmt.Errorf("azidentity-default would use the user-assigned identity AZURE_CLIENT_ID=%s, not the system-assigned one: unset AZURE_CLIENT_ID or use --identity client_id=%s", got, got)
		}
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: hc},
		DisableInstanceDiscovery: o.DisableInstanceDiscovery,
	})
	if err != nil {
		return nil, fmt.Errorf("azidentity.NewDefaultAzureCredential: %w", err)
	}
	return &azCredential{name: ClientAzidentityDefault, cred: cred}, nil
}
