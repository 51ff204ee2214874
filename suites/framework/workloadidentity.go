package framework

import (
	"context"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.

	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/internal/stack"
)

// WIWebhookReference is what WIWebhook says when the workload identity
// webhook under test is idharness's reference webhook.
const WIWebhookReference = stack.WIWebhookReference

// WIWebhook names the workload identity webhook under test:
// WIWebhookReference, the name of an implementation declared as data
// (--sut) that claims workload identity, "none" when the stack deploys
// none, or empty when the stack does not say (deployed by an older
// idharness). Specs that need the reference webhook's test paths skip for
// another's.
func (f *Framework) WIWebhook() string {
	GinkgoHelper()
	return f.connected().WIWebhook
}

// WorkloadIdentity is the workload identity part of the stack, for the
// specs of that mode: the fake authority that exchanges projected service
// account tokens for Azure tokens, and the webhook under test.
type WorkloadIdentity struct {
	// AuthorityHost is what the webhook sets AZURE_AUTHORITY_HOST to.
	AuthorityHost string
	// Issuer is the cluster's service account issuer, which the authority
	// trusts: the iss of projected tokens.
	Issuer string
	// CAPEM is the authority's CA certificate; clients must trust it.
	CAPEM string
	// Authority is the authority's control API (its journal, identities
	// and federated credentials, faults), through the API server.
	Authority *client.Client

	wi *stack.WorkloadIdentity
}

// WorkloadIdentity returns the stack's workload identity part, or an
// error saying how to deploy it (a spec skips then, or fails when the
// implementation claims the mode: Claimed).
func (f *Framework) WorkloadIdentity(ctx context.Context) (*WorkloadIdentity, error) {
	GinkgoHelper()
	wi, err := f.connected().WorkloadIdentity(ctx)
	if err != nil {
		return nil, err
	}
	return &WorkloadIdentity{AuthorityHost: wi.AuthorityHost, Issuer: wi.Issuer, CAPEM: wi.CAPEM, Authority: wi.Authority, wi: wi}, nil
}

// SetFailurePolicy sets the webhook's failurePolicy ("Fail" or "Ignore");
// deploys set Fail, as Azure's webhook ships.
func (w *WorkloadIdentity) SetFailurePolicy(ctx context.Context, policy string) error {
	return w.wi.SetFailurePolicy(ctx, policy)
}

// ScaleWebhook sets the webhook's replicas (0 takes it down) and waits
// until that many pods serve, or none is left.
func (w *WorkloadIdentity) ScaleWebhook(ctx context.Context, replicas int32) error {
	return w.wi.ScaleWebhook(ctx, replicas)
}
