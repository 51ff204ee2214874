package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() { Register("shift-expiry", func() Fault { return &ShiftExpiry{} }) }

// ShiftExpiry moves the expiry a token response states (expires_on and
// expires_in, ext_expires_in alike) by a duration while the token itself
// keeps its exp: {"type":"shift-expiry","by":"-2h"}. An endpoint whose
// clock or cache disagrees with the token service's answers like this;
// it is also how a test tells a client that reports its SDK's expiry from
// one that reads the JWT.
type ShiftExpiry struct {
	By duration.Duration `json:"by"`
}

// Validate checks the parameters.
func (s *ShiftExpiry) Validate() error {
	if s.By.Duration == 0 {
		return fmt.Errorf("by: want a non-zero duration, e.g. -2h")
	}
	if s.By.Duration%time.Second != 0 {
		return fmt.Errorf("by: want whole seconds (expires_on is in seconds), got %v", s.By.Duration)
	}
	return nil
}

// Apply adds the body edit.
func (s *ShiftExpiry) Apply(fx *Effects, _ *rand.Rand) {
	by := int64(s.By.Duration / time.Second)
	fx.BodyEdits = append(fx.BodyEdits, func(b []byte) []byte {
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			return b
		}
		for _, k := range []string{"expires_on", "expires_in", "ext_expires_in"} {
			v, ok := m[k]
			if !ok {
				continue
			}
			// Keep the field's JSON type: IMDS sends strings, other
			// endpoints numbers.
			var str string
			if json.Unmarshal(v, &str) == nil {
				if n, err := strconv.ParseInt(str, 10, 64); err == nil {
					m[k], _ = json.Marshal(strconv.FormatInt(n+by, 10))
				}
				continue
			}
			var n int64
			if json.Unmarshal(v, &n) == nil {
				m[k], _ = json.Marshal(n + by)
			}
		}
		out, err := json.Marshal(m)
		if err != nil {
			return b
		}
		return out
	})
}
