package chaos

import (
	"fmt"
	"math/rand/v2"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fakeimds/token"
)

func init() { Register("clock-skew", func() Fault { return &ClockSkew{} }) }

// ClockSkew shifts the token's iat, nbf and exp (and the response's
// expires_on, not_before), as a host with a wrong clock would:
// {"type":"clock-skew","offset":"-10m"}.
type ClockSkew struct {
	Offset duration.Duration `json:"offset"`
}

// Validate checks the offset.
func (c *ClockSkew) Validate() error {
	if c.Offset.Duration == 0 {
		return fmt.Errorf("offset must not be zero")
	}
	return nil
}

// Apply shifts the token times.
func (c *ClockSkew) Apply(fx *Effects, _ *rand.Rand) {
	fx.Shift = &token.Shift{Offset: c.Offset.Duration}
}
