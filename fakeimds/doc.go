// Package fakeimds is a fake Azure Instance Metadata Service and Azure AD
// authority that real SDK clients cannot tell from the real ones.
//
// One Server has several faces, each of which can be turned off: the IMDS
// token endpoint (/metadata/identity/oauth2/token), instance metadata
// (/metadata/instance, /metadata/versions), the App Service / Container
// Apps identity endpoint, the Azure Arc endpoint (its own listener), and
// the authority (token exchange for workload identity, signing keys, OIDC
// discovery). Tokens are real RS256 JWTs (package token) for the identities
// in a Store (package identity). Every request lands in a Journal (package
// journal) and in Prometheus metrics. A control API on a separate listener
// attaches and detaches identities, changes token lifetime and reads the
// journal; package client is its Go client.
//
// Other modules may embed it: build a config.Config (config.Default, or
// config.LoadFile, whose file problems are *config.FileError with the
// line), put its listeners on loopback ports ("127.0.0.1:0") and give the
// authority a writable TLSDir, then New and Run in a goroutine; Run's ready
// callback receives the bound Addrs. Drive it through client.New on
// Addrs.Control: identities, token settings, fault rules (package chaos),
// the journal. Tests can take package fakeimdstest's Start instead, which
// does all of that and stops the server with the test.
// examples/public-api in the source tree does it from a module of its own.
package fakeimds
