// Package probe is idharness's sample workload: it acquires tokens with
// real Azure identity clients (azidentity, MSAL Go and a raw HTTP client),
// once or in a loop, uses each token at a protected resource, and records
// every attempt as a Result, written by cmd/probe as one JSON line.
// That output format (Result, Summary, ParseLine) is pkg/proberesult's,
// public because suites/framework hands the results to other modules.
//
// Each client is a small file implementing Client. All of them send their
// requests through a Counter, a counting http.RoundTripper wrapped around
// a default transport, so that the number of requests a call made, and
// hence whether it was served from the client's cache, is measured rather
// than assumed. In a cluster the transport dials 169.254.169.254 as any
// workload would; tests redirect it with Options.IMDSAddr.
//
// # Caches are process-wide
//
// MSAL Go caches managed identity tokens in a process-wide store keyed by
// identity and resource, across client instances, and azidentity's
// ManagedIdentityCredential (and so DefaultAzureCredential) is built on
// it. Two clients of one probe process asking for the same identity and
// resource therefore share tokens: the first reaches the endpoint and the
// others are served from cache, and FromCache says so. Suites that need
// every client to reach the endpoint run one client per pod (--client), or
// give each a resource of its own. The workload identity clients keep
// their caches per client instance; the raw client has none.
package probe
