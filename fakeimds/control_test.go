package fakeimds

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsAndHealth(t *testing.T) {
	s := newServer(t, nil)
	do(s.IMDSHandler(), "GET", imdsURL("api-version=2018-02-01&resource=r"), meta)
	do(s.IMDSHandler(), "GET", imdsURL("api-version=2018-02-01&resource=r"), meta)
	do(s.IMDSHandler(), "GET", imdsURL("api-version=2018-02-01&resource=r"), nil)
	if w := do(s.ControlHandler(), "GET", "/healthz", nil); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
	w := do(s.ControlHandler(), "GET", "/metrics", nil)
	body, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`fakeimds_requests_total{face="imds",identity="system",status="200"} 2`,
		`fakeimds_requests_total{face="imds",identity="",status="400"} 1`,
		`fakeimds_tokens_minted_total 1`,
		`fakeimds_request_duration_seconds_bucket{face="imds",le="0.0001"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The control API never answers on the IMDS listener.
	if w := do(s.IMDSHandler(), "GET", "/v1/identities", nil); w.Code != http.StatusNotFound {
		t.Errorf("control API reachable on the IMDS handler: %d", w.Code)
	}
}

func TestControlBadRequests(t *testing.T) {
	s := newServer(t, nil)
	h := s.ControlHandler()
	for _, tc := range []struct {
		method, target, body string
		status               int
		contains             string
	}{
		{"DELETE", "/v1/identities", "", 400, "exactly one identity"},
		{"DELETE", "/v1/identities?client_id=a&object_id=b", "", 400, "exactly one identity"},
		{"POST", "/v1/identities", `{"name":"x","clientId":"11111111-1111-4111-8111-111111111199","objectId":"11111111-1111-4111-8111-111111111198","color":"red"}`, 400, "unknown field"},
		{"POST", "/v1/identities", `{`, 400, "invalid JSON"},
		{"PUT", "/v1/tokens", `{"lifetime":"soon"}`, 400, "duration"},
		{"PUT", "/v1/tokens", `{"refreshBefore":"-1s"}`, 400, "refreshBefore"},
		{"PATCH", "/v1/identities?client_id=" + uaClient, `{"tokenLifetime":"-5s"}`, 400, "tokenLifetime"},
		{"PATCH", "/v1/identities?client_id=99999999-9999-4999-8999-999999999999", `{"tokenLifetime":"5s"}`, 404, "no identity"},
		{"GET", "/v1/journal?since=x", "", 400, "since"},
		{"GET", "/v1/nope", "", 404, ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://127.0.0.1:8079"+tc.target, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			w := newRecorderFor(h, req)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.contains) {
				t.Fatalf("%d %s; want %d containing %q", w.Code, w.Body, tc.status, tc.contains)
			}
		})
	}
	// Nothing half-applied: the identities are as they were.
	if n := len(s.Store().List()); n != 3 {
		t.Errorf("%d identities after rejected requests, want 3", n)
	}
}
