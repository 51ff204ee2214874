package fakeimds

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/api"
)

// TestSetFieldOverHTTP adds set-field rules through the control API, as a
// scenario does, and checks what a client of the token endpoint receives.
// The rules name the documented path without a trailing slash and the
// client sends it with one (as the JS SDK does), so the test also fails
// if rule paths stop matching canonically.
func TestSetFieldOverHTTP(t *testing.T) {
	s := newServer(t, nil)
	a := running(t, s)
	const resource = "https://vault.azure.net"
	rules := `[
	 {"name":"echo","match":{"faces":["imds"],"path":"/metadata/identity/oauth2/token"},"action":{"type":"set-field","field":"resource","template":"{{.Resource}}/"}},
	 {"name":"numeric","match":{"path":"/metadata/identity/oauth2/token"},"action":{"type":"set-field","field":"expires_on","json":1700000000}},
	 {"name":"no-expires-in","match":{"path":"/metadata/identity/oauth2/token"},"action":{"type":"set-field","field":"expires_in","remove":true}},
	 {"name":"who","match":{"path":"/metadata/identity/oauth2/token"},"action":{"type":"set-field","field":"x_asked","template":"{{.ClientID}}|{{.Selector}}"}}
	]`
	resp, err := http.Post("http://"+a.Control+api.PathFaults, "application/json", strings.NewReader(rules))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("add rules: %d %s", resp.StatusCode, b)
	}

	get := func(path, query string) map[string]json.RawMessage {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.IMDS+path+"?api-version=2018-02-01&resource="+resource+query, nil)
		req.Header.Set("Metadata", "true")
		c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) {
			t.Fatalf("%d, Content-Length %d for %d bytes: %s", resp.StatusCode, resp.ContentLength, len(body), body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		return m
	}

	m := get(IMDSTokenPath+"/", "&client_id="+uaClient)
	for field, want := range map[string]string{
		"resource":   `"` + resource + `/"`, // fails if the template saw no request
		"expires_on": `1700000000`,          // a number: fails if json were quoted
		"x_asked":    `"` + uaClient + `|` + uaClient + `"`,
		"token_type": `"Bearer"`, // untouched
	} {
		if got := string(m[field]); got != want {
			t.Errorf("%s = %s, want %s", field, got, want)
		}
	}
	if v, ok := m["expires_in"]; ok {
		t.Errorf("expires_in = %s, want it removed", v)
	}
	if _, ok := m["access_token"]; !ok {
		t.Error("access_token lost")
	}
	// The journal entry is written as the handler returns, which can be
	// after the client has read the whole body.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		e := s.Journal().Since(0)
		if len(e) > 0 && strings.Join(e[len(e)-1].Faults, ",") == "echo,numeric,no-expires-in,who" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal does not name the four rules: %+v", e)
		}
	}

	// Selecting the identity by object ID: no client_id was sent.
	m = get(IMDSTokenPath, "&object_id="+uaObject)
	if got := string(m["x_asked"]); got != `"|`+uaObject+`"` {
		t.Errorf("x_asked = %s, want the object ID as selector and no client ID", got)
	}

	// A rule scoped to another face leaves the body alone.
	resp, err = http.Post("http://"+a.Control+api.PathFaults, "application/json", bytes.NewReader([]byte(
		`{"name":"elsewhere","match":{"faces":["appservice"]},"action":{"type":"set-field","field":"token_type","value":"pop"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if m = get(IMDSTokenPath, ""); string(m["token_type"]) != `"Bearer"` {
		t.Errorf("token_type = %s from a rule for the appservice face", m["token_type"])
	}
}

// TestSetFieldRefusedByControlAPI: a bad template is refused when the rule
// is added, with the rule and the reason, not when a request hits it.
func TestSetFieldRefusedByControlAPI(t *testing.T) {
	s := newServer(t, nil)
	a := running(t, s)
	for _, tc := range []struct{ rule, want string }{
		{`{"name":"typo","action":{"type":"set-field","field":"resource","template":"{{.Resorce}}"}}`, "the fields are .Face"},
		{`{"name":"both","action":{"type":"set-field","field":"resource","value":"x","json":"1"}}`, "want exactly one of"},
		{`{"name":"text","action":{"type":"set-field","field":"expires_on","json":"soon"}}`, "not valid JSON"},
	} {
		resp, err := http.Post("http://"+a.Control+api.PathFaults, "application/json", strings.NewReader(tc.rule))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", tc.rule, resp.StatusCode, b, tc.want)
		}
	}
	if n := s.Chaos().Len(); n != 0 {
		t.Errorf("%d rules added", n)
	}
}
