package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/fakeimdstest"
)

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Identity
		err  string
	}{
		{"", Identity{Kind: System}, ""},
		{"system", Identity{Kind: System}, ""},
		{"client_id=" + fakeimdstest.UserAClientID, Identity{Kind: ByClientID, Value: fakeimdstest.UserAClientID}, ""},
		{"object_id=" + fakeimdstest.UserAObjectID, Identity{Kind: ByObjectID, Value: fakeimdstest.UserAObjectID}, ""},
		{"resource_id=/subscriptions/x", Identity{Kind: ByResourceID, Value: "/subscriptions/x"}, ""},
		{"msi_res_id=/subscriptions/x", Identity{Kind: ByResourceID, Value: "/subscriptions/x"}, ""},
		{"client_id=", Identity{}, "want system"},
		{fakeimdstest.UserAClientID, Identity{}, "want system"},
		{"principal=" + fakeimdstest.UserAObjectID, Identity{}, "unknown selector"},
	} {
		got, err := ParseIdentity(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseIdentity(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseIdentity(%q) = %+v, %v", tc.in, got, err)
		}
		if tc.in != "" && !strings.HasPrefix(tc.in, "msi_res_id") && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

func TestCounter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.UserAgent(), "idharness-probe/raw") {
			t.Errorf("User-Agent %q lacks the client tag", r.UserAgent())
		}
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	c := NewCounter(http.DefaultTransport, userAgentTag+"raw")
	hc := &http.Client{Transport: c}
	for range 3 {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if n, st := c.Snapshot(); n != 3 || st != http.StatusTeapot {
		t.Errorf("Snapshot() = %d, %d", n, st)
	}
}

func TestNewRunnerValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"unknown client", Config{Clients: []string{"curl"}}, "unknown client"},
		{"unknown mode", Config{Options: Options{Mode: "arc"}}, "want one of imds, appservice, workload-identity"},
		{"vault without secret", Config{VaultURL: "http://vault"}, "--secret"},
		{"bad vault URL", Config{VaultURL: "vault", Secret: "s"}, "want http(s)"},
		{"negative count", Config{Count: -1}, "negative"},
		{"client twice", Config{Clients: []string{"raw", "raw"}}, "twice"},
		{"bad imds address", Config{Options: Options{IMDSAddr: "localhost"}}, "HOST:PORT"},
		{"negative parallel", Config{Parallel: -1}, "want 1 to 64"},
		{"parallel over the bound", Config{Parallel: MaxParallel + 1}, "want 1 to 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRunner(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// clockedClient is a client whose token call happens at the time its
// clock gives, which it records.
type clockedClient struct {
	now    func() time.Time
	called time.Time
}

func (c *clockedClient) GetToken(context.Context, string) (Token, error) {
	c.called = c.now()
	return Token{}, errors.New("no token here")
}

// TestAttemptWindowHoldsTheCall checks that an attempt's window, from
// its Time for LatencyMs, holds the moment its token call ran: scenarios
// count the requests in that window as the attempt's. The clock's first
// reading is 5 s before the others, which are 1 ms apart, as on a busy
// node where the attempt was set up, then descheduled before its call: a
// Time read then would leave the call after the window's end.
func TestAttemptWindowHoldsTheCall(t *testing.T) {
	base := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	readings := 0
	now := func() time.Time {
		readings++
		if readings == 1 {
			return base
		}
		return base.Add(5*time.Second + time.Duration(readings)*time.Millisecond)
	}
	c := &clockedClient{now: now}
	r := &Runner{cfg: Config{Resource: DefaultResource, Timeout: time.Second}, now: now}
	res := r.attempt(context.Background(), runClient{name: "c", client: c}, 1)
	end := res.Time.Add(res.LatencyMs.D())
	if c.called.Before(res.Time) || c.called.After(end) {
		t.Errorf("the token call ran at %s, outside the attempt's window %s to %s", c.called.Format(time.StampMilli), res.Time.Format(time.StampMilli), end.Format(time.StampMilli))
	}
}
