// Package workloadidentity is Azure workload identity's contract for
// Kubernetes, as azure-workload-identity documents it
// (github.com/Azure/azure-workload-identity, docs/book/src: topics/
// service-account-labels-and-annotations.md for the label and
// annotations, installation/mutating-admission-webhook.md for the
// environment variables, topics/federated-identity-credential.md for the
// audience): what users put on pods and service accounts, and what a
// mutating webhook gives the pods in return, which clients (Azure
// Identity SDKs, MSAL) rely on.
//
// It belongs to neither side of a conformance run: webhooks
// (azure-workload-identity's, idharness's reference webhook, a vendor's)
// implement it, and whoever judges them (idharness's suites, or another
// module) checks them by it. That is why it is public and imports nothing
// of idharness's: the judge must not take the contract from the
// implementation it judges.
//
// Where the token is mounted is deliberately not here. The documentation
// names the volume azure-identity-token and the file
// /var/run/secrets/azure/tokens/azure-identity-token, but
// azure-workload-identity's webhook has since moved both (a volume
// azure-workload-identity-reserved-<hash> mounted at
// /var/run/secrets/azure/wi, file token/azure-identity-token), and every
// client finds the file through EnvTokenFile. The contract is that
// EnvTokenFile names the projected token in every injected container; the
// volume, mount path and file name are each webhook's choice (the
// reference webhook's are in internal/wiwebhook).
package workloadidentity

// UseLabel on a pod asks the webhook to mutate it; only "true" counts.
const UseLabel = "azure.workload.identity/use"

// Annotations of service accounts.
const (
	// ClientIDAnnotation is the client ID of the application or
	// user-assigned identity the pod uses (EnvClientID). Without it, the
	// application names the identity itself.
	ClientIDAnnotation = "azure.workload.identity/client-id"
	// TenantIDAnnotation is the identity's tenant (EnvTenantID); without
	// it the webhook's configured tenant is used.
	TenantIDAnnotation = "azure.workload.identity/tenant-id"
)

// Annotations of pods. TokenExpirationAnnotation may also be on the
// service account; the pod's wins.
const (
	// TokenExpirationAnnotation is the projected token's
	// expirationSeconds, from MinTokenExpiration to MaxTokenExpiration.
	TokenExpirationAnnotation = "azure.workload.identity/service-account-token-expiration"
	// SkipContainersAnnotation lists containers, separated by ";", that
	// get neither the variables nor the token.
	SkipContainersAnnotation = "azure.workload.identity/skip-containers"
	// ProxyAnnotation ("true") asks for the proxy sidecar, which answers
	// IMDS token requests from inside the pod with tokens from a
	// federated credential exchange, for clients that only know managed
	// identity (upstream's InjectProxySidecarAnnotation).
	ProxyAnnotation = "azure.workload.identity/inject-proxy-sidecar"
)

// The environment variables the webhook sets in every container it does
// not skip, unless the container sets them itself.
const (
	// EnvClientID is ClientIDAnnotation's value (absent without it).
	EnvClientID = "AZURE_CLIENT_ID"
	// EnvTenantID is TenantIDAnnotation's value, else the webhook's tenant.
	EnvTenantID = "AZURE_TENANT_ID"
	// EnvTokenFile is the path of the projected service account token,
	// the client assertion of the token exchange.
	EnvTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	// EnvAuthorityHost is the Microsoft Entra ID endpoint, e.g.
	// https://login.microsoftonline.com/.
	EnvAuthorityHost = "AZURE_AUTHORITY_HOST"
)

// TokenAudience is the audience of the projected service account token,
// the one federated identity credentials expect by default.
const TokenAudience = "api://AzureADTokenExchange"

// The bounds and default of the projected token's lifetime
// (TokenExpirationAnnotation), in seconds: "3600 (acceptable range: 3600 -
// 86400)". Kubernetes itself allows down to 600 s; the webhook asks for at
// least an hour so that kubelet's refresh (at 80 % of the lifetime) leaves
// clients time, and at most a day.
const (
	MinTokenExpiration     = 3600
	MaxTokenExpiration     = 86400
	DefaultTokenExpiration = 3600
)
