package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fakeimds/token"
)

func init() {
	Register("expired-token", func() Fault { return &ExpiredToken{Ago: duration.Of(time.Minute)} })
}

// ExpiredToken hands out a token whose exp is already in the past:
// {"type":"expired-token","ago":"1m"}.
type ExpiredToken struct {
	Ago duration.Duration `json:"ago"`
}

// Validate checks the parameters.
func (e *ExpiredToken) Validate() error {
	if e.Ago.Duration <= 0 {
		return fmt.Errorf("ago must be positive")
	}
	return nil
}

// Apply mints a token that was issued an hour before it expired, Ago ago.
func (e *ExpiredToken) Apply(fx *Effects, _ *rand.Rand) {
	fx.Shift = &token.Shift{Offset: -(time.Hour + e.Ago.Duration), Lifetime: time.Hour}
}
