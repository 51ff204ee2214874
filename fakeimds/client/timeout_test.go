package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/journal"
)

// TestHTTPClientTimeout: the default client gives up on a control API
// that does not answer; a caller's own client is used as given.
func TestHTTPClientTimeout(t *testing.T) {
	own := &http.Client{Timeout: 3 * time.Second}
	for _, tc := range []struct {
		name    string
		opts    []Option
		want    time.Duration
		wantOwn bool
	}{
		{"default", nil, DefaultTimeout, false},
		{"caller's client", []Option{WithHTTPClient(own)}, 3 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New("http://127.0.0.1:8079", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if c.hc.Timeout != tc.want {
				t.Errorf("timeout %v, want %v", c.hc.Timeout, tc.want)
			}
			if (c.hc == own) != tc.wantOwn {
				t.Errorf("caller's client used: %v, want %v", c.hc == own, tc.wantOwn)
			}
		})
	}
	if DefaultTimeout <= 0 || DefaultTimeout > time.Minute {
		t.Errorf("DefaultTimeout %v: want a bound of at most a minute", DefaultTimeout)
	}
}

// TestTimeoutErrorAndStream: a call to a control API that hangs fails
// after the client's timeout with an error that says what to do, while
// the journal stream, which lasts as long as its context, is not cut off
// by it.
func TestTimeoutErrorAndStream(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.PathJournalWatch {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(400 * time.Millisecond):
				_, _ = w.Write([]byte(`{"seq":7}` + "\n"))
			case <-r.Context().Done():
			}
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(srv.URL, WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func(context.Context) error
		want []string
	}{
		{"hanging call", c.Health, []string{srv.URL, "did not answer within 100ms", "check that fakeimds runs"}},
		{"stream outlives the timeout", func(ctx context.Context) error {
			var got uint64
			err := c.StreamJournal(ctx, 0, func(e journal.Entry) error { got = e.Seq; return ErrStop })
			if err == nil && got != 7 {
				t.Errorf("streamed seq %d, want 7", got)
			}
			return err
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := tc.call(ctx)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
