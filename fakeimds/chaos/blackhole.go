package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() {
	Register("blackhole", func() Fault { return &Blackhole{Max: duration.Of(5 * time.Minute)} })
}

// Blackhole makes a listener accept connections and never read from them,
// as a wedged metadata endpoint does; connections are closed when the
// rule ends or after Max: {"type":"blackhole"}. It matches faces only.
type Blackhole struct {
	Max duration.Duration `json:"max,omitempty"`
}

// Validate checks the bound.
func (b *Blackhole) Validate() error {
	if b.Max.Duration <= 0 || b.Max.Duration > time.Hour {
		return fmt.Errorf("max: want a bound between 0 and 1h, got %v", b.Max.Duration)
	}
	return nil
}

// Apply does nothing per request: the listener carries the fault.
func (*Blackhole) Apply(*Effects, *rand.Rand) {}

func (*Blackhole) listenerLevel() bool { return true }
