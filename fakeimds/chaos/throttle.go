package chaos

import (
	"math/rand/v2"
	"net/http"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() { Register("throttle", func() Fault { return &Throttle{} }) }

// Throttle answers 429 with the body IMDS sends when it throttles:
// {"type":"throttle","retryAfter":"2s"}.
type Throttle struct {
	RetryAfter duration.Duration `json:"retryAfter,omitempty"`
}

// Validate accepts any parameters.
func (t *Throttle) Validate() error { return nil }

// Apply sets the 429 answer.
func (t *Throttle) Apply(fx *Effects, _ *rand.Rand) {
	fx.Response = ErrorResponse(http.StatusTooManyRequests, "", "", t.RetryAfter.Duration)
}
