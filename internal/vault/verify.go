package vault

import (
	"context"

	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/token"
)

// Reasons, in decision logs and the X-Idharness-Reason header.
const (
	ReasonOK              = "ok"
	ReasonMissingToken    = "missing-token"
	ReasonMalformed       = "malformed-token"
	ReasonUnknownKey      = "unknown-key"
	ReasonBadSignature    = "bad-signature"
	ReasonKeysUnavailable = "keys-unavailable"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not-yet-valid"
	ReasonWrongIssuer     = "wrong-issuer"
	ReasonWrongAudience   = "wrong-audience"
	ReasonNoObjectID      = "no-oid"
	ReasonNotAllowed      = "not-on-acl"
	ReasonUnknownSecret   = "unknown-secret"
)

// Rejection is why a request was refused.
type Rejection struct {
	// Status is the HTTP status: 401 for the token, 403 for the ACL, 404,
	// or 503 when keys could not be fetched.
	Status int
	// Reason is one of the Reason constants.
	Reason string
	// Message is the text of the error body.
	Message string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

func unauthorized(reason, format string, a ...any) *Rejection {
	return &Rejection{Status: http.StatusUnauthorized, Reason: reason, Message: fmt.Sprintf(format, a...)}
}

// verifier checks access tokens as an Azure resource does.
type verifier struct {
	cfg  Config
	keys *KeySet
	now  func() time.Time
}

// Verify checks raw (a compact JWT) and returns its claims, or the
// Rejection that says why it is refused. Checks run in the order a
// resource must run them: nothing in the claims is looked at before the
// signature is verified.
func (v *verifier) Verify(ctx context.Context, raw string) (token.Claims, *Rejection) {
	var c token.Claims
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return c, unauthorized(ReasonMalformed, "Invalid token: not an RS256-signed JWT: %v.", err)
	}
	kid := tok.Headers[0].KeyID
	keys, err := v.keys.Lookup(ctx, kid)
	if err != nil {
		return c, &Rejection{Status: http.StatusServiceUnavailable, Reason: ReasonKeysUnavailable,
			Message: fmt.Sprintf("The signing keys of the authority could not be fetched, so no token can be verified: %v. Check that the JWKS URLs answer.", err)}
	}
	anyKey := false
	if len(keys) == 0 {
		if !v.cfg.AnyKey {
			return c, unauthorized(ReasonUnknownKey, "Invalid token: its signing key (kid %q) is not published by the trusted authorities.", kid)
		}
		keys, anyKey = v.keys.All(), true
	}
	verified := false
	for _, k := range keys {
		// Verify into a generic map, so that a signature failure is never
		// confused with claims of an unexpected shape.
		var payload map[string]any
		if err := tok.Claims(k.Key, &payload); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		if anyKey {
			return c, unauthorized(ReasonUnknownKey, "Invalid token: its signing key (kid %q) is not published and no trusted key verifies it.", kid)
		}
		return c, unauthorized(ReasonBadSignature, "Invalid token: the signature does not verify with the published key %q.", kid)
	}
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		// The signature verified above; this only decodes the same payload.
		return c, unauthorized(ReasonMalformed, "Invalid token: claims of an unexpected shape: %v.", err)
	}
	now := v.now()
	switch {
	case c.Expiry == 0:
		return c, unauthorized(ReasonMalformed, "Invalid token: it has no exp claim.")
	case !now.Before(time.Unix(c.Expiry, 0).Add(v.cfg.Skew)):
		return c, unauthorized(ReasonExpired, "Token expired at %s (now %s, allowed clock skew %s).",
			utc(c.Expiry), now.UTC().Format(time.RFC3339), v.cfg.Skew)
	case c.NotBefore != 0 && now.Add(v.cfg.Skew).Before(time.Unix(c.NotBefore, 0)):
		return c, unauthorized(ReasonNotYetValid, "Token is not valid before %s (now %s, allowed clock skew %s).",
			utc(c.NotBefore), now.UTC().Format(time.RFC3339), v.cfg.Skew)
	}
	if !v.issuerOK(c.Issuer) {
		return c, unauthorized(ReasonWrongIssuer, "AKV10032: Invalid issuer. Expected one of %s, found %s.", strings.Join(v.issuers(), ", "), c.Issuer)
	}
	if !v.audienceOK(c.Audience) {
		return c, unauthorized(ReasonWrongAudience, "AKV10022: Invalid audience. Expected %s, found: %s.", v.cfg.Audiences[0], c.Audience)
	}
	if c.ObjectID == "" {
		return c, unauthorized(ReasonNoObjectID, "Invalid token: it has no oid claim, so the caller cannot be identified.")
	}
	return c, nil
}

func utc(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }

// issuers lists the accepted issuers: v1 and v2 forms of each tenant's.
func (v *verifier) issuers() []string {
	var out []string
	for _, t := range v.cfg.Tenants {
		out = append(out, token.Issuer(t), "https://login.microsoftonline.com/"+t+"/v2.0")
	}
	return out
}

func (v *verifier) issuerOK(iss string) bool {
	for _, want := range v.issuers() {
		if strings.EqualFold(iss, want) {
			return true
		}
	}
	return false
}

// audienceOK accepts each configured audience with or without a trailing
// slash, as Key Vault accepts both https://vault.azure.net and
// https://vault.azure.net/.
func (v *verifier) audienceOK(aud string) bool {
	aud = strings.TrimSuffix(aud, "/")
	for _, want := range v.cfg.Audiences {
		if aud != "" && aud == strings.TrimSuffix(want, "/") {
			return true
		}
	}
	return false
}
