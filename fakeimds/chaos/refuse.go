package chaos

import "math/rand/v2"

func init() { Register("refuse", func() Fault { return &Refuse{} }) }

// Refuse takes a listener down while the rule is active, so that clients
// get "connection refused", as during a metadata outage: {"type":"refuse"}.
// It matches faces only.
type Refuse struct{}

// Validate accepts any parameters.
func (Refuse) Validate() error { return nil }

// Apply does nothing per request: the listener carries the fault.
func (Refuse) Apply(*Effects, *rand.Rand) {}

func (Refuse) listenerLevel() bool { return true }
