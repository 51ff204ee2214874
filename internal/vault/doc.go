// Package vault is idharness's protected resource: a service shaped like
// Azure Key Vault's secret read, GET /secrets/{name} with a Bearer token,
// that sample pods call with the tokens they got from the fake metadata
// service. It checks what a real resource checks — the RS256 signature
// against the authority's published keys, aud, exp/nbf, iss — and which
// identity (oid) may read which secret, answers as Key Vault does (bodies,
// status codes, the WWW-Authenticate challenge), and logs every decision
// as JSON with its reason, so that specs can assert both that a token is
// accepted and why one is not.
package vault
