package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func init() {
	Register("latency", func() Fault { return &Latency{Distribution: "fixed", Where: "before-headers"} })
}

// Latency delays a response: {"type":"latency","delay":"1.2s"}.
type Latency struct {
	// Delay is the fixed delay, or the mean of the distribution.
	Delay duration.Duration `json:"delay"`
	// Distribution is fixed, uniform (Delay ± Jitter) or normal (mean
	// Delay, standard deviation Jitter, never below zero).
	Distribution string `json:"distribution,omitempty"`
	// Jitter is the half-width (uniform) or standard deviation (normal).
	Jitter duration.Duration `json:"jitter,omitempty"`
	// Where is before-headers (nothing sent until the delay is over) or
	// mid-body (headers and half the body first).
	Where string `json:"where,omitempty"`
}

// Validate checks the parameters.
func (l *Latency) Validate() error {
	if l.Delay.Duration <= 0 {
		return fmt.Errorf("delay must be positive, e.g. \"1.2s\"")
	}
	switch l.Distribution {
	case "fixed", "uniform", "normal":
	default:
		return fmt.Errorf("distribution: want fixed, uniform or normal, got %q", l.Distribution)
	}
	if l.Jitter.Duration < 0 || (l.Distribution == "uniform" && l.Jitter.Duration > l.Delay.Duration) {
		return fmt.Errorf("jitter must be between 0 and delay")
	}
	if l.Where != "before-headers" && l.Where != "mid-body" {
		return fmt.Errorf("where: want before-headers or mid-body, got %q", l.Where)
	}
	return nil
}

// sample draws one delay from the distribution.
func (l *Latency) sample(rnd *rand.Rand) time.Duration {
	d, j := l.Delay.Duration, l.Jitter.Duration
	switch l.Distribution {
	case "uniform":
		if j > 0 {
			d += time.Duration((rnd.Float64()*2 - 1) * float64(j))
		}
	case "normal":
		d += time.Duration(rnd.NormFloat64() * float64(j))
	}
	if d < 0 {
		d = 0
	}
	return d
}

// Apply adds the sampled delay.
func (l *Latency) Apply(fx *Effects, rnd *rand.Rand) {
	d := l.sample(rnd)
	if l.Where == "mid-body" {
		fx.MidBodyDelay += d
		return
	}
	fx.Delay += d
}
