package goazidentity

import (
	"github.com/idharness/idharness/clients"

	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// newAzidentityWI is azidentity's WorkloadIdentityCredential. It reads
// AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
// AZURE_AUTHORITY_HOST as the webhook sets them; --identity client_id=…
// overrides the client ID. It rereads the token file when its assertion
// is older than five minutes, as kubelet rotates the file.
func newAzidentityWI(o clients.Options, hc *http.Client) (clients.Client, error) {
	if o.Mode != clients.ModeWorkloadIdentity {
		return nil, fmt.Errorf("azidentity-wi needs --mode workload-identity, not %s", o.Mode)
	}
	opts := &azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: hc},
		DisableInstanceDiscovery: o.DisableInstanceDiscovery,
	}
	if o.Identity.Kind == clients.ByClientID {
		opts.ClientID = o.Identity.Value
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("azidentity.NewWorkloadIdentityCredential: %w", err)
	}
	return &azCredential{cred: cred}, nil
}
