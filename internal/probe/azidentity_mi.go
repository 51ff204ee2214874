package probe

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// azCredential adapts an azcore.TokenCredential to Client.
type azCredential struct {
	name string
	cred azcore.TokenCredential
}

func (c *azCredential) Name() string { return c.name }

func (c *azCredential) GetToken(ctx context.Context, resource string) (Token, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope(resource)}})
	if err != nil {
		return Token{}, err
	}
	return Token{Value: tok.Token, ExpiresOn: tok.ExpiresOn}, nil
}

// newAzidentityMI is azidentity's ManagedIdentityCredential, which reads
// the source (IMDS, App Service…) from the environment and the identity
// from its options.
func newAzidentityMI(o Options, hc *http.Client) (Client, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: hc}}
	switch o.Identity.Kind {
	case ByClientID:
		opts.ID = azidentity.ClientID(o.Identity.Value)
	case ByObjectID:
		opts.ID = azidentity.ObjectID(o.Identity.Value)
	case ByResourceID:
		opts.ID = azidentity.ResourceID(o.Identity.Value)
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("azidentity.NewManagedIdentityCredential: %w", err)
	}
	return &azCredential{name: ClientAzidentityMI, cred: cred}, nil
}
