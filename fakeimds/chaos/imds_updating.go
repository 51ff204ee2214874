package chaos

import (
	"math/rand/v2"
	"net/http"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() { Register("imds-updating", func() Fault { return &IMDSUpdating{} }) }

// IMDSUpdating answers 410 as IMDS does while the host is being updated
// (up to 70 s in production): {"type":"imds-updating"}.
type IMDSUpdating struct {
	RetryAfter duration.Duration `json:"retryAfter,omitempty"`
}

// Validate accepts any parameters.
func (u *IMDSUpdating) Validate() error { return nil }

// Apply sets the 410 answer.
func (u *IMDSUpdating) Apply(fx *Effects, _ *rand.Rand) {
	fx.Response = ErrorResponse(http.StatusGone, "", "", u.RetryAfter.Duration)
}
