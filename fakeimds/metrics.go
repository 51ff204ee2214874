package fakeimds

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series, on a registry of its own so
// that several servers in one test process do not collide.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	minted   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fakeimds", Name: "requests_total",
			Help: "Requests served, by face, HTTP status and identity name.",
		}, []string{"face", "status", "identity"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fakeimds", Name: "request_duration_seconds",
			Help:    "Time to serve a request, by face.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 70},
		}, []string{"face"}),
		minted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fakeimds", Name: "tokens_minted_total",
			Help: "Tokens signed (cache misses included, cache hits excluded).",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.minted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(face string, status int, identity string, d time.Duration) {
	m.requests.WithLabelValues(face, statusLabel(status), identity).Inc()
	m.latency.WithLabelValues(face).Observe(d.Seconds())
}

// faceMetrics are one face's series, bound to their label values once:
// WithLabelValues hashes the values and looks them up under a lock on
// every call, which the cached token path paid twice per request.
type faceMetrics struct {
	m        *metrics
	face     string
	latency  prometheus.Observer
	requests sync.Map // requestKey → *requestChild
	// last is the child counted last: compared before requests is
	// hashed (sync.Map hashes its key as an interface, the larger part
	// of observe's cost), since a client's requests come in runs of the
	// same status and identity.
	last atomic.Pointer[requestChild]
}

type requestChild struct {
	key requestKey
	c   prometheus.Counter
}

// requestKey names a requests_total child of a face. Its values are
// bounded: statuses by statusLabel, identity names by the configuration
// and control API.
type requestKey struct {
	status   int
	identity string
}

func (m *metrics) forFace(face string) *faceMetrics {
	return &faceMetrics{m: m, face: face, latency: m.latency.WithLabelValues(face)}
}

// observe counts a request and its latency, as metrics.observe does.
func (f *faceMetrics) observe(status int, identity string, d time.Duration) {
	if status < 100 || status >= 600 {
		status = 0 // all "other"
	}
	k := requestKey{status, identity}
	c := f.last.Load()
	if c == nil || c.key != k {
		v, ok := f.requests.Load(k)
		if !ok {
			v, _ = f.requests.LoadOrStore(k, &requestChild{k, f.m.requests.WithLabelValues(f.face, statusLabel(status), identity)})
		}
		c = v.(*requestChild)
		f.last.Store(c)
	}
	c.c.Inc()
	f.latency.Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
