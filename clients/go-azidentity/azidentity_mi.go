package goazidentity

import (
	"github.com/idharness/idharness/clients"

	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// azCredential adapts an azcore.TokenCredential to Client.
type azCredential struct {
	cred azcore.TokenCredential
}

func (c *azCredential) GetToken(ctx context.Context, resource string) (clients.Token, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{clients.Scope(resource)}})
	if err != nil {
		return clients.Token{}, err
	}
	return clients.Token{Value: tok.Token, ExpiresOn: tok.ExpiresOn}, nil
}

// newAzidentityMI is azidentity's ManagedIdentityCredential, which reads
// the source (IMDS, App Service…) from the environment and the identity
// from its options.
func newAzidentityMI(o clients.Options, hc *http.Client) (clients.Client, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: hc}}
	switch o.Identity.Kind {
	case clients.ByClientID:
		opts.ID = azidentity.ClientID(o.Identity.Value)
	case clients.ByObjectID:
		opts.ID = azidentity.ObjectID(o.Identity.Value)
	case clients.ByResourceID:
		opts.ID = azidentity.ResourceID(o.Identity.Value)
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("azidentity.NewManagedIdentityCredential: %w", err)
	}
	return &azCredential{cred: cred}, nil
}
