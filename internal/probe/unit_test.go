package probe

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
