// Package duration provides a time.Duration that YAML and JSON files write
// as Go duration strings ("90s", "24h"), shared by the configuration, the
// control API and chaos rules.
package duration

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Duration is a time.Duration written as a string such as "90s".
type Duration struct{ time.Duration }

// Of returns d as a Duration.
func Of(d time.Duration) Duration { return Duration{d} }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "90s" or "24h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"90s\" or \"24h\", got %s", string(b))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"90s\" or \"24h\": %w", err)
	}
	d.Duration = v
	return nil
}

// Millis is a duration written in JSON as a number of milliseconds with
// microsecond precision, the unit people read latencies in.
type Millis time.Duration

// D returns m as a time.Duration.
func (m Millis) D() time.Duration { return time.Duration(m) }

// MarshalJSON writes the milliseconds as a number.
func (m Millis) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(float64(m)/1e3) / 1e3)
}

// UnmarshalJSON reads a number of milliseconds.
func (m *Millis) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("want milliseconds as a number: %w", err)
	}
	*m = Millis(f * 1e6)
	return nil
}
