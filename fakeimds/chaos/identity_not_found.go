package chaos

import (
	"math/rand/v2"
	"net/http"
)

func init() { Register("identity-not-found", func() Fault { return &IdentityNotFound{} }) }

// IdentityNotFound answers 400 "Identity not found", as IMDS does while
// an identity is being assigned: {"type":"identity-not-found"}.
type IdentityNotFound struct{}

// Validate accepts any parameters.
func (IdentityNotFound) Validate() error { return nil }

// Apply sets the 400 answer.
func (IdentityNotFound) Apply(fx *Effects, _ *rand.Rand) {
	fx.Response = ErrorResponse(http.StatusBadRequest, "invalid_request", "Identity not found", 0)
}
