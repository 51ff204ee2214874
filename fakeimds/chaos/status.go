package chaos

import (
	"fmt"
	"math/rand/v2"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() { Register("status", func() Fault { return &Status{} }) }

// Status answers with any HTTP status and the real IMDS body for it:
// {"type":"status","status":503,"retryAfter":"5s"}.
type Status struct {
	Status int `json:"status"`
	// Error and Description override the default body's fields.
	Error       string `json:"error,omitempty"`
	Description string `json:"description,omitempty"`
	// RetryAfter, when set, adds a Retry-After header (whole seconds).
	RetryAfter duration.Duration `json:"retryAfter,omitempty"`
}

// Validate checks the parameters.
func (s *Status) Validate() error {
	if s.Status < 200 || s.Status > 599 {
		return fmt.Errorf("status: want an HTTP status between 200 and 599, got %d", s.Status)
	}
	if s.RetryAfter.Duration < 0 {
		return fmt.Errorf("retryAfter must not be negative")
	}
	return nil
}

// Apply sets the canned response.
func (s *Status) Apply(fx *Effects, _ *rand.Rand) {
	fx.Response = ErrorResponse(s.Status, s.Error, s.Description, s.RetryAfter.Duration)
}
