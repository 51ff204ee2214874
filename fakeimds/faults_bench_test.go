package fakeimds

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
)

// BenchmarkLatencyPrecision measures how closely injected latency is kept:
// the error is the latency the client observes minus the requested one
// (so it includes the request's own cost, some 100 µs on loopback).
//
//	go test -run '^$' -bench LatencyPrecision -benchtime 200x ./fakeimds/
func BenchmarkLatencyPrecision(b *testing.B) {
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second} {
		b.Run(d.String(), func(b *testing.B) {
			s := newServer(b, nil)
			a := running(b, s)
			if err := s.Chaos().Add(rule(b, `{"name":"lat","match":{"faces":["imds"]},"action":{"type":"latency","delay":"`+d.String()+`"}}`)); err != nil {
				b.Fatal(err)
			}
			c := benchClient()
			url := "http://" + a.IMDS + IMDSTokenPath + benchQuery
			benchGet(b, c, url)
			errs := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				benchGet(b, c, url)
				errs = append(errs, time.Since(t0)-d)
			}
			b.StopTimer()
			slices.Sort(errs)
			b.ReportMetric(float64(errs[len(errs)/2].Microseconds())/1000, "p50-err-ms")
			b.ReportMetric(float64(errs[len(errs)*99/100].Microseconds())/1000, "p99-err-ms")
		})
	}
}

// BenchmarkThrottleAdmittedRate offers 4× the token endpoint's limit for
// a fixed five seconds (bounded: 400 requests) and reports the admitted
// rate against the configured 20/s.
//
//	go test -run '^$' -bench ThrottleAdmittedRate -benchtime 1x ./fakeimds/
func BenchmarkThrottleAdmittedRate(b *testing.B) {
	on := true
	const limit, window = 20, 5 * time.Second
	for i := 0; i < b.N; i++ {
		s := newServer(b, func(c *config.Config) { c.Chaos.Throttle = chaos.Limits{Enabled: &on, IdentityRPS: limit} })
		a := running(b, s)
		url := "http://" + a.IMDS + IMDSTokenPath + benchQuery
		c := benchClient()
		var admitted, offered atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), window)
		// Four senders, each at the limit: 4× the limit in all, never
		// more than 4 in flight (under the concurrency limit of 5).
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second / limit)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
					req.Header.Set("Metadata", "true")
					resp, err := c.Do(req)
					if err != nil {
						continue
					}
					resp.Body.Close()
					offered.Add(1)
					if resp.StatusCode == 200 {
						admitted.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		cancel()
		rate := float64(admitted.Load()) / window.Seconds()
		b.ReportMetric(float64(offered.Load())/window.Seconds(), "offered/s")
		b.ReportMetric(rate, "admitted/s")
		b.ReportMetric(rate/limit, "admitted/limit")
	}
}
