package gomsal

import (
	"github.com/idharness/idharness/clients"

	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// msalWI is MSAL Go's confidential client doing the workload identity
// token exchange: its client assertion is the projected service account
// token, reread from AZURE_FEDERATED_TOKEN_FILE on every call so that a
// rotated file is picked up.
type msalWI struct {
	c confidential.Client
}

func newMSALWI(o clients.Options, hc *http.Client) (clients.Client, error) {
	if o.Mode != clients.ModeWorkloadIdentity {
		return nil, fmt.Errorf("msal-wi needs --mode workload-identity, not %s", o.Mode)
	}
	clientID := os.Getenv("AZURE_CLIENT_ID")
	if o.Identity.Kind == clients.ByClientID {
		clientID = o.Identity.Value
	}
	file := os.Getenv("AZURE_FEDERATED_TOKEN_FILE")
	authority := strings.TrimRight(os.Getenv("AZURE_AUTHORITY_HOST"), "/") + "/" + os.Getenv("AZURE_TENANT_ID")
	cred := confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the service account token in AZURE_FEDERATED_TOKEN_FILE: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", errors.New("AZURE_FEDERATED_TOKEN_FILE is empty; is the service account token projected?")
		}
		return s, nil
	})
	opts := []confidential.Option{confidential.WithHTTPClient(hc)}
	if o.DisableInstanceDiscovery {
		opts = append(opts, confidential.WithInstanceDiscovery(false))
	}
	c, err := confidential.New(authority, clientID, cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("confidential.New(%s): %w", authority, err)
	}
	return &msalWI{c: c}, nil
}

func (m *msalWI) GetToken(ctx context.Context, resource string) (clients.Token, error) {
	// AcquireTokenByCredential looks in the client's cache first, as
	// applications are told to rely on.
	res, err := m.c.AcquireTokenByCredential(ctx, []string{clients.Scope(resource)})
	if err != nil {
		return clients.Token{}, err
	}
	return clients.Token{Value: res.AccessToken, ExpiresOn: res.ExpiresOn}, nil
}
