package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() { Register("hang", func() Fault { return &Hang{Max: duration.Of(5 * time.Minute)} }) }

// Hang holds the request without answering until the client gives up,
// or closes the connection after Max: {"type":"hang","max":"2m"}.
type Hang struct {
	Max duration.Duration `json:"max,omitempty"`
}

// Validate checks the bound.
func (h *Hang) Validate() error {
	if h.Max.Duration <= 0 || h.Max.Duration > time.Hour {
		return fmt.Errorf("max: want a bound between 0 and 1h, got %v", h.Max.Duration)
	}
	return nil
}

// Apply holds the connection.
func (h *Hang) Apply(fx *Effects, _ *rand.Rand) {
	fx.Conn, fx.HangMax = ConnHang, h.Max.Duration
}
