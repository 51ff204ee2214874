package chaos

import "math/rand/v2"

func init() { Register("close", func() Fault { return &Close{} }) }

// Close closes the connection without a response: {"type":"close"}.
type Close struct{}

// Validate accepts any parameters.
func (Close) Validate() error { return nil }

// Apply closes the connection.
func (Close) Apply(fx *Effects, _ *rand.Rand) { fx.Conn = ConnClose }
