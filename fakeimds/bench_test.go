package fakeimds

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/config"
)

// The token endpoint benchmarks compare fakeimds with the ceiling of the
// stack on this machine: a bare net/http handler writing a fixed body of
// the same size. "cached" serves from the token cache (the steady state
// of real IMDS), "uncached" signs a token per request.
//
//	go test -run '^$' -bench TokenEndpoint -benchmem ./fakeimds/
//
// Each reports tokens/s and, from a one-client loop, p50 and p99 latency.

const benchQuery = "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"

func benchServers(b *testing.B, cache bool) (fake http.Handler, bare http.Handler) {
	s := newServer(b, func(c *config.Config) { c.Tokens.Cache = &cache })
	w := do(s.IMDSHandler(), http.MethodGet, "http://169.254.169.254"+IMDSTokenPath+benchQuery, meta)
	if w.Code != 200 {
		b.Fatalf("warm-up: %d %s", w.Code, w.Body)
	}
	body := w.Body.Bytes()
	length := strconv.Itoa(len(body))
	bare = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json; charset=utf-8"}
		h["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})
	return s.IMDSHandler(), bare
}

// loopback serves h on 127.0.0.1 for the benchmark.
func loopback(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String() + IMDSTokenPath + benchQuery
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
}

func benchGet(b *testing.B, c *http.Client, url string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header["Metadata"] = []string{"true"}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

func BenchmarkTokenEndpoint(b *testing.B) {
	for _, mode := range []struct {
		name  string
		cache bool
		bare  bool
	}{
		{"bare-nethttp", true, true},
		{"cached", true, false},
		{"uncached", false, false},
	} {
		b.Run(mode.name+"/http-parallel", func(b *testing.B) {
			fake, bare := benchServers(b, mode.cache)
			h := fake
			if mode.bare {
				h = bare
			}
			url := loopback(b, h)
			c := benchClient()
			benchGet(b, c, url)
			b.ReportAllocs()
			b.SetParallelism(4)
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchGet(b, c, url)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
		})
		b.Run(mode.name+"/http-serial-latency", func(b *testing.B) {
			fake, bare := benchServers(b, mode.cache)
			h := fake
			if mode.bare {
				h = bare
			}
			url := loopback(b, h)
			c := benchClient()
			benchGet(b, c, url)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				benchGet(b, c, url)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
		b.Run(mode.name+"/handler", func(b *testing.B) {
			fake, bare := benchServers(b, mode.cache)
			h := fake
			if mode.bare {
				h = bare
			}
			req := httptest.NewRequest(http.MethodGet, "http://169.254.169.254"+IMDSTokenPath+benchQuery, nil)
			req.Header["Metadata"] = []string{"true"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.ServeHTTP(discardWriter{h: http.Header{}}, req)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the handler
// benchmark measures the handler alone.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { clear(d.h); return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
