package gomsal

import (
	"github.com/idharness/idharness/clients"

	"context"
	"fmt"
	"net/http"

	mi "github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
)

// msalMI is MSAL Go's managed identity client, with its own retry policy
// on. It picks the source (IMDS, App Service…) from the environment.
type msalMI struct{ c mi.Client }

func newMSALMI(o clients.Options, hc *http.Client) (clients.Client, error) {
	id := mi.SystemAssigned()
	switch o.Identity.Kind {
	case clients.ByClientID:
		id = mi.UserAssignedClientID(o.Identity.Value)
	case clients.ByObjectID:
		id = mi.UserAssignedObjectID(o.Identity.Value)
	case clients.ByResourceID:
		id = mi.UserAssignedResourceID(o.Identity.Value)
	}
	c, err := mi.New(id, mi.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("managedidentity.New: %w", err)
	}
	return &msalMI{c: c}, nil
}

func (m *msalMI) GetToken(ctx context.Context, resource string) (clients.Token, error) {
	res, err := m.c.AcquireToken(ctx, resource)
	if err != nil {
		return clients.Token{}, err
	}
	return clients.Token{Value: res.AccessToken, ExpiresOn: res.ExpiresOn}, nil
}
