package escape

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeToken returns a token response whose JWT carries oid.
func fakeToken(oid string) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"oid":"` + oid + `"}`))
	b, _ := json.Marshal(map[string]string{"access_token": "e30." + payload + ".sig", "token_type": "Bearer"})
	return string(b)
}

// TestSendKeepsTheRequestRaw checks that paths reach the server as
// written: a client library would clean "//" and "/./" away, and the
// attempts would test nothing.
func TestSendKeepsTheRequestRaw(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.RequestURI+" xff="+strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
		mu.Unlock()
		w.Write([]byte(fakeToken("oid-b")))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, a := range []Attempt{
		{Name: "dd", Kind: KindToken, Addr: addr, Method: "GET", Target: "/metadata//identity/./x?a=1"},
		{Name: "xff", Kind: KindToken, Addr: addr, Method: "POST", Target: "/t", Headers: []string{"X-Forwarded-For:", "X-Forwarded-For: 10.0.0.9"}, Body: "client_id=b"},
	} {
		r := Send(context.Background(), a, 5*time.Second)
		if r.Status != 200 || !r.Token || r.OID != "oid-b" {
			t.Fatalf("%s: %+v", a.Name, r)
		}
	}
	want := []string{"GET /metadata//identity/./x?a=1 xff=", "POST /t xff=|10.0.0.9"}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("server saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

// TestViolations runs a plan against a server that hands out a foreign
// identity's token on a path variant, and one that refuses everything,
// and checks that only the first is caught.
func TestViolations(t *testing.T) {
	leaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/config":
			w.Write([]byte(`{"appService":{"secret":"s"}}`))
		case strings.HasPrefix(r.URL.Path, tokenPath+"/x"):
			w.Write([]byte(fakeToken("oid-b")))
		case r.URL.Path == tokenPath && r.URL.Query().Get("client_id") == "":
			w.Write([]byte(fakeToken("oid-a")))
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer leaky.Close()
	tight := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer tight.Close()
	judge := func(srv *httptest.Server, own string) []string {
		addr := strings.TrimPrefix(srv.URL, "http://")
		_, port, _ := net.SplitHostPort(addr)
		p := Params{Resource: "api://r", ForeignClientID: "b", ForeignObjectID: "ob", ForeignResourceID: "/subscriptions/x", Controls: []string{addr}}
		var got []string
		for _, a := range Plan(p) {
			if a.Addr == MetadataAddr {
				a.Addr = "127.0.0.1:" + port
			}
			if v := Violation(Send(context.Background(), a, 5*time.Second), own); v != "" {
				got = append(got, v)
			}
		}
		return got
	}
	v := judge(leaky, "oid-a")
	joined := strings.Join(v, "\n")
	for _, want := range []string{"path trailing segment, foreign client_id", "control " + strings.TrimPrefix(leaky.URL, "http://") + "/v1/config"} {
		if !strings.Contains(joined, want) {
			t.Errorf("leaky server: no violation for %q in\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "canonical no selector") {
		t.Errorf("the bound pod's own token counted as a violation:\n%s", joined)
	}
	if v := judge(leaky, ""); !strings.Contains(strings.Join(v, "\n"), "canonical no selector") {
		t.Errorf("an unbound pod's token was not a violation:\n%s", strings.Join(v, "\n"))
	}
	if v := judge(tight, "oid-a"); len(v) != 0 {
		t.Errorf("a server refusing everything has violations:\n%s", strings.Join(v, "\n"))
	}
}

func TestParamsRoundTrip(t *testing.T) {
	p := Params{Resource: "api://r", ForeignClientID: "b", Controls: []string{"10.0.0.1:8079"}}
	got, err := DecodeParams(p.Encode())
	if err != nil || got.Resource != p.Resource || got.Controls[0] != p.Controls[0] {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodeParams("!!"); err == nil {
		t.Fatal("bad value accepted")
	}
	if _, err := DecodeParams(Params{Resource: "r"}.Encode()); err == nil {
		t.Fatal("params without foreignClientId accepted")
	}
}

// TestSendAll checks that SendAll keeps the attempts' order and never has
// more than inFlight of them at the server at once, yet does overlap them:
// the server holds each request until as many as allowed have arrived
// (50 ms at most), so an unbounded sender overshoots and a serial one
// never reaches two.
func TestSendAll(t *testing.T) {
	for _, tc := range []struct {
		name               string
		inFlight, attempts int
		wantAtOnce         int
	}{
		{name: "one at a time", inFlight: 1, attempts: 5, wantAtOnce: 1},
		{name: "zero means one", inFlight: 0, attempts: 3, wantAtOnce: 1},
		{name: "four at once", inFlight: 4, attempts: 12, wantAtOnce: 4},
		{name: "fewer attempts than slots", inFlight: 4, attempts: 2, wantAtOnce: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			now, most := 0, 0
			full := make(chan struct{})
			var once sync.Once
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				now++
				most = max(most, now)
				if now >= tc.wantAtOnce {
					once.Do(func() { close(full) })
				}
				mu.Unlock()
				select {
				case <-full:
				case <-time.After(50 * time.Millisecond):
				}
				if tc.wantAtOnce == 1 {
					time.Sleep(20 * time.Millisecond) // room for a second one to arrive
				}
				mu.Lock()
				now--
				mu.Unlock()
				w.Write([]byte(r.URL.Path))
			}))
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			var as []Attempt
			for i := range tc.attempts {
				n := string(rune('a' + i))
				as = append(as, Attempt{Name: n, Kind: KindToken, Addr: addr, Method: "GET", Target: "/" + n})
			}
			rs := SendAll(context.Background(), as, 5*time.Second, tc.inFlight)
			if len(rs) != len(as) {
				t.Fatalf("%d results for %d attempts", len(rs), len(as))
			}
			for i, r := range rs {
				if r.Escape != as[i].Name || r.Status != 200 || r.Body != as[i].Target {
					t.Fatalf("result %d is %+v, want attempt %s's", i, r, as[i].Name)
				}
			}
			if most != tc.wantAtOnce {
				t.Fatalf("%d attempts at the server at once at most, want %d", most, tc.wantAtOnce)
			}
		})
	}
}
