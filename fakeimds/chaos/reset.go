package chaos

import "math/rand/v2"

func init() { Register("reset", func() Fault { return &Reset{} }) }

// Reset aborts the connection with a TCP RST instead of answering:
// {"type":"reset"}.
type Reset struct{}

// Validate accepts any parameters.
func (Reset) Validate() error { return nil }

// Apply resets the connection.
func (Reset) Apply(fx *Effects, _ *rand.Rand) { fx.Conn = ConnReset }
