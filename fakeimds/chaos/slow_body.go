package chaos

import (
	"fmt"
	"math/rand/v2"
)

func init() { Register("slow-body", func() Fault { return &SlowBody{} }) }

// SlowBody sends the response body at a bounded rate:
// {"type":"slow-body","bytesPerSecond":100}.
type SlowBody struct {
	BytesPerSecond int `json:"bytesPerSecond"`
}

// Validate checks the rate.
func (s *SlowBody) Validate() error {
	if s.BytesPerSecond <= 0 {
		return fmt.Errorf("bytesPerSecond must be positive")
	}
	return nil
}

// Apply paces the body.
func (s *SlowBody) Apply(fx *Effects, _ *rand.Rand) { fx.BytesPerSecond = s.BytesPerSecond }
