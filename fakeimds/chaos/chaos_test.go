package chaos

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func mustRule(t testing.TB, js string) Rule {
	t.Helper()
	var r Rule
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return r
}

func TestRuleDecodeAndValidate(t *testing.T) {
	cases := []struct {
		name string
		js   string
		want string // error substring; "" for valid
	}{
		{"latency", `{"name":"a","action":{"type":"latency","delay":"1.2s","distribution":"normal","jitter":"100ms"}}`, ""},
		{"status with retry", `{"name":"a","match":{"faces":["imds"],"probability":0.5},"action":{"type":"status","status":503,"retryAfter":"5s"}}`, ""},
		{"every kind decodes", `{"name":"a","action":{"type":"field-types","variant":"date-expires-on"}}`, ""},
		{"unknown type", `{"name":"a","action":{"type":"explode"}}`, `unknown action type "explode"`},
		{"missing type", `{"name":"a","action":{"delay":"1s"}}`, "action.type is required"},
		{"unknown param", `{"name":"a","action":{"type":"latency","delay":"1s","dealy":"2s"}}`, `unknown field "dealy"`},
		{"bad duration", `{"name":"a","action":{"type":"latency","delay":"soon"}}`, "want a duration"},
		{"no name", `{"action":{"type":"reset"}}`, "name: required"},
		{"bad face", `{"name":"a","match":{"faces":["imdz"]},"action":{"type":"reset"}}`, `match.faces: unknown face "imdz"`},
		{"bad probability", `{"name":"a","match":{"probability":1.5},"action":{"type":"reset"}}`, "match.probability"},
		{"bad source", `{"name":"a","match":{"sources":["10.0.0.300"]},"action":{"type":"reset"}}`, "match.sources"},
		{"bad status", `{"name":"a","action":{"type":"status","status":99}}`, "status: want an HTTP status"},
		{"zero latency", `{"name":"a","action":{"type":"latency"}}`, "delay must be positive"},
		{"jitter over delay", `{"name":"a","action":{"type":"latency","delay":"10ms","distribution":"uniform","jitter":"20ms"}}`, "jitter"},
		{"refuse by source", `{"name":"a","match":{"sources":["10.0.0.1"]},"action":{"type":"refuse"}}`, "can only match faces"},
		{"refuse by face", `{"name":"a","match":{"faces":["imds"]},"schedule":{"after":"1s","for":"30s"},"action":{"type":"refuse"}}`, ""},
		{"tls certificate by source", `{"name":"a","match":{"faces":["authority"],"sources":["10.0.0.1"]},"action":{"type":"tls-certificate","certificate":"expired"}}`, ""},
		{"tls certificate by path", `{"name":"a","match":{"path":"/x"},"action":{"type":"tls-certificate","certificate":"untrusted"}}`, "can only match faces and sources"},
		{"tls certificate missing", `{"name":"a","action":{"type":"tls-certificate"}}`, "certificate: required"},
		{"tls certificate unknown", `{"name":"a","action":{"type":"tls-certificate","certificate":"revoked"}}`, `got "revoked"`},
		{"negative schedule", `{"name":"a","schedule":{"for":"-1s"},"action":{"type":"reset"}}`, "schedule"},
		{"hang bound", `{"name":"a","action":{"type":"hang","max":"2h"}}`, "max"},
		{"malformed form", `{"name":"a","action":{"type":"malformed","form":"xml"}}`, "form"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Rule
			err := json.Unmarshal([]byte(tc.js), &r)
			if err == nil {
				err = r.Validate()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestActionRoundTrip(t *testing.T) {
	for _, kind := range Kinds() {
		r := mustRule(t, `{"name":"x","action":{"type":"`+kind+`"}}`)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		var back Rule
		if err := json.Unmarshal(b, &back); err != nil || back.Action.Type != kind {
			t.Fatalf("%s: round trip %s: %v", kind, b, err)
		}
	}
	if len(Kinds()) < 16 {
		t.Errorf("only %d fault kinds registered: %v", len(Kinds()), Kinds())
	}
}

func req(face, src string) *Request {
	return &Request{Face: face, Method: "GET", Path: "/metadata/identity/oauth2/token", Header: http.Header{"Metadata": {"true"}},
		Source: netip.MustParseAddr(src), Resource: "https://vault.azure.net", IdentityKeys: []string{"cid-a", "oid-a", "system"}}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		match string
		req   *Request
		want  bool
	}{
		{`{}`, req("imds", "10.0.0.1"), true},
		{`{"faces":["instance"]}`, req("imds", "10.0.0.1"), false},
		{`{"path":"/metadata/*"}`, req("imds", "10.0.0.1"), true},
		{`{"path":"/metadata/instance"}`, req("imds", "10.0.0.1"), false},
		{`{"methods":["post"]}`, req("imds", "10.0.0.1"), false},
		{`{"identity":"CID-A"}`, req("imds", "10.0.0.1"), true},
		{`{"identity":"system"}`, req("imds", "10.0.0.1"), true},
		{`{"identity":"cid-b"}`, req("imds", "10.0.0.1"), false},
		{`{"resource":"https://vault.azure.net"}`, req("imds", "10.0.0.1"), true},
		{`{"resource":"https://vault.azure.net/"}`, req("imds", "10.0.0.1"), false},
		{`{"sources":["10.244.1.0/24"]}`, req("imds", "10.244.1.7"), true},
		{`{"sources":["10.244.1.0/24"]}`, req("imds", "10.244.2.7"), false},
		{`{"sources":["::ffff:10.0.0.1"]}`, req("imds", "10.0.0.1"), true},
		{`{"headerAbsent":["Metadata"]}`, req("imds", "10.0.0.1"), false},
		{`{"headerPresent":["metadata"]}`, req("imds", "10.0.0.1"), true},
	}
	for _, tc := range cases {
		r := mustRule(t, `{"name":"m","match":`+tc.match+`,"action":{"type":"reset"}}`)
		if err := r.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.match, err)
		}
		if got := r.Match.matches(tc.req); got != tc.want {
			t.Errorf("match %s on %s from %v = %v, want %v", tc.match, tc.req.Face, tc.req.Source, got, tc.want)
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func hits(e *Engine, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = e.Evaluate(req("imds", "10.0.0.1")) != nil
	}
	return out
}

func TestCountersAndSchedule(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	cases := []struct {
		rule string
		want string // hit pattern over 6 requests
	}{
		{`{"name":"r","match":{"firstN":2},"action":{"type":"reset"}}`, "XX...."},
		{`{"name":"r","match":{"everyNth":3},"action":{"type":"reset"}}`, "..X..X"},
		{`{"name":"r","match":{"count":4},"action":{"type":"reset"}}`, "XXXX.."},
		{`{"name":"r","match":{"everyNth":2,"count":2},"action":{"type":"reset"}}`, ".X.X.."},
		{`{"name":"r","schedule":{"after":"10s"},"action":{"type":"reset"}}`, "......"},
	}
	for _, tc := range cases {
		e := NewEngine(1, c.now)
		if err := e.Add(mustRule(t, tc.rule)); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, h := range hits(e, 6) {
			if h {
				got.WriteByte('X')
			} else {
				got.WriteByte('.')
			}
		}
		if got.String() != tc.want {
			t.Errorf("%s: hits %s, want %s", tc.rule, got.String(), tc.want)
		}
	}
	e := NewEngine(1, c.now)
	_ = e.Add(mustRule(t, `{"name":"w","schedule":{"after":"10s","for":"5s"},"action":{"type":"reset"}}`))
	for _, step := range []struct {
		at    int64
		state State
	}{{1005, Pending}, {1010, Active}, {1014, Active}, {1015, Expired}} {
		c.t = time.Unix(step.at, 0)
		if s := e.Rules()[0].State; s != step.state {
			t.Errorf("at %d: %s, want %s", step.at, s, step.state)
		}
	}
	c.t = time.Unix(1000, 0)
	if next := e.NextChange(); !next.Equal(time.Unix(1010, 0)) {
		t.Errorf("NextChange %v", next)
	}
}

// TestSameSeedSameFaults is the replay property: with the same seed and
// the same request sequence, the same requests see the same faults; a
// rule's draws do not depend on which other rules exist.
func TestSameSeedSameFaults(t *testing.T) {
	p := `{"name":"p","match":{"probability":0.3},"action":{"type":"latency","delay":"10ms","distribution":"normal","jitter":"5ms"}}`
	q := `{"name":"q","match":{"probability":0.5,"faces":["instance"]},"action":{"type":"reset"}}`
	run := func(seed int64, rules ...string) (pattern []bool, delays []time.Duration) {
		e := NewEngine(seed, nil)
		for _, r := range rules {
			if err := e.Add(mustRule(t, r)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 200; i++ {
			face := "imds"
			if i%3 == 0 {
				face = "instance"
			}
			fx := e.Evaluate(req(face, "10.0.0.1"))
			hit := fx != nil && len(fx.Faults) > 0 && fx.Faults[0] == "p"
			pattern = append(pattern, hit)
			if hit {
				delays = append(delays, fx.Delay)
			}
		}
		return
	}
	a, ad := run(42, p)
	b, bd := run(42, p, q)
	c, _ := run(43, p)
	if !equal(a, b) || len(ad) != len(bd) {
		t.Fatal("same seed, different faults when another rule was added")
	}
	for i := range ad {
		if ad[i] != bd[i] {
			t.Fatalf("delay %d differs: %v vs %v", i, ad[i], bd[i])
		}
	}
	if equal(a, c) {
		t.Error("different seeds gave the same 200-request pattern")
	}
	n := 0
	for _, h := range a {
		if h {
			n++
		}
	}
	if n < 40 || n > 80 {
		t.Errorf("probability 0.3 hit %d of 200", n)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTerminalStopsLaterRules(t *testing.T) {
	e := NewEngine(1, nil)
	err := e.Add(
		mustRule(t, `{"name":"slow","action":{"type":"latency","delay":"5ms"}}`),
		mustRule(t, `{"name":"gone","action":{"type":"imds-updating"}}`),
		mustRule(t, `{"name":"never","action":{"type":"reset"}}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	fx := e.Evaluate(req("imds", "10.0.0.1"))
	if strings.Join(fx.Faults, ",") != "slow,gone" || fx.Delay != 5*time.Millisecond || fx.Response.Status != 410 || fx.Conn != ConnNone {
		t.Fatalf("effects %+v", fx)
	}
	if err := e.Add(mustRule(t, `{"name":"slow","action":{"type":"reset"}}`)); err == nil {
		t.Error("duplicate name accepted")
	}
	bad := []Rule{mustRule(t, `{"name":"ok","action":{"type":"reset"}}`), mustRule(t, `{"name":"bad","action":{"type":"latency"}}`)}
	if err := e.Add(bad...); err == nil || len(e.Rules()) != 3 {
		t.Errorf("half-applied add: %v, %d rules", err, len(e.Rules()))
	}
	if !e.Remove("gone") || e.Remove("gone") {
		t.Error("Remove")
	}
}

func TestErrorResponses(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		status int
		body   string
		retry  string
	}{
		{`{"type":"imds-updating"}`, 410, `{"error":"gone","error_description":"IMDS is going through updates"}`, ""},
		{`{"type":"throttle","retryAfter":"1500ms"}`, 429, `{"error":"invalid_request","error_description":"Temporarily throttled, too many requests"}`, "2"},
		{`{"type":"identity-not-found"}`, 400, `{"error":"invalid_request","error_description":"Identity not found"}`, ""},
		{`{"type":"status","status":404}`, 404, `{"error":"not_found","error_description":"IMDS endpoint is updating"}`, ""},
		{`{"type":"status","status":418,"description":"teapot"}`, 418, `{"error":"error","error_description":"teapot"}`, ""},
	} {
		r := mustRule(t, `{"name":"x","action":`+tc.rule+`}`)
		fx := &Effects{}
		r.Action.Fault.Apply(fx, nil)
		if fx.Response.Status != tc.status || string(fx.Response.Body) != tc.body || fx.Response.Header.Get("Retry-After") != tc.retry {
			t.Errorf("%s: %d %s retry %q", tc.rule, fx.Response.Status, fx.Response.Body, fx.Response.Header.Get("Retry-After"))
		}
	}
}

func TestBodyEdits(t *testing.T) {
	body := []byte(`{"access_token":"t","expires_in":"3599","expires_on":"1800000000","resource":"r","token_type":"Bearer"}`)
	for _, tc := range []struct {
		action string
		check  func(string) bool
	}{
		{`{"type":"malformed","form":"truncated"}`, func(s string) bool { return !json.Valid([]byte(s)) && len(s) == len(body)/2 }},
		{`{"type":"malformed","form":"non-json"}`, func(s string) bool { return strings.HasPrefix(s, "<html>") }},
		{`{"type":"malformed","form":"empty"}`, func(s string) bool { return s == "" }},
		{`{"type":"field-types","variant":"numeric-expires-on"}`, func(s string) bool { return strings.Contains(s, `"expires_on":1800000000`) }},
		{`{"type":"field-types","variant":"numeric-expires-in"}`, func(s string) bool { return strings.Contains(s, `"expires_in":3599`) }},
		{`{"type":"field-types","variant":"date-expires-on"}`, func(s string) bool { return strings.Contains(s, `"expires_on":"01/15/2027 08:00:00 +00:00"`) }},
		{`{"type":"field-types","variant":"missing-resource"}`, func(s string) bool { return !strings.Contains(s, `"resource"`) }},
		{`{"type":"field-types","variant":"missing-expires-on"}`, func(s string) bool { return !strings.Contains(s, `"expires_on"`) }},
	} {
		r := mustRule(t, `{"name":"x","action":`+tc.action+`}`)
		fx := &Effects{}
		r.Action.Fault.Apply(fx, nil)
		out := string(fx.BodyEdits[0](body))
		if !tc.check(out) {
			t.Errorf("%s: %s", tc.action, out)
		}
	}
}

func TestLimiterWindowAndConcurrency(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	l := NewLimiter(Limits{}, c.now)
	admitted := 0
	var releases []func()
	for i := 0; i < 30; i++ {
		if rel, ok := l.Admit("imds"); ok {
			admitted++
			releases = append(releases, rel)
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d concurrent token requests, want 5", admitted)
	}
	for _, r := range releases {
		r()
		r() // idempotent
	}
	admitted = 0
	for i := 0; i < 40; i++ {
		if rel, ok := l.Admit("imds"); ok {
			admitted++
			rel()
		}
	}
	if admitted != 15 { // 20 per second, 5 already used in this second
		t.Fatalf("admitted %d, want 15 more in the same second", admitted)
	}
	c.t = c.t.Add(time.Second)
	meta := 0
	for i := 0; i < 10; i++ {
		if _, ok := l.Admit("instance"); ok {
			meta++
		}
	}
	if meta != 5 {
		t.Errorf("metadata admitted %d, want 5", meta)
	}
	if _, ok := l.Admit("appservice"); !ok {
		t.Error("App Service is not IMDS and must not be throttled")
	}
	off := false
	l.Set(Limits{Enabled: &off})
	for i := 0; i < 100; i++ {
		if _, ok := l.Admit("instance"); !ok {
			t.Fatal("throttled while off")
		}
	}
}

func FuzzRuleDecode(f *testing.F) {
	f.Add(`{"name":"a","match":{"faces":["imds"],"sources":["10.0.0.0/8"]},"action":{"type":"latency","delay":"1s"},"schedule":{"for":"1m"}}`)
	f.Add(`{"name":"b","action":{"type":"field-types","variant":"numeric-expires-on"}}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, js string) {
		var r Rule
		if json.Unmarshal([]byte(js), &r) != nil {
			return
		}
		if r.Validate() != nil {
			return
		}
		e := NewEngine(7, nil)
		if err := e.Add(r); err != nil {
			t.Fatalf("valid rule refused: %v", err)
		}
		fx := e.Evaluate(req("imds", "10.0.0.1"))
		if fx != nil {
			for _, edit := range fx.BodyEdits {
				edit([]byte(`{"expires_on":"1","resource":"r"}`))
			}
		}
	})
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"defaults", DefaultLimits(), true},
		{"retry after in seconds", Limits{RetryAfter: duration.Duration{Duration: 2 * time.Second}}, true},
		{"negative rate", Limits{IdentityRPS: -1}, false},
		{"retry after below a second", Limits{RetryAfter: duration.Duration{Duration: 500 * time.Millisecond}}, false},
		{"negative retry after", Limits{RetryAfter: duration.Duration{Duration: -time.Second}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.l.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestLimiterSetTogglesOff checks Admit's lock-free answer while
// throttling is off against each change of the limits: a limiter that
// missed turning back on would admit everything.
func TestLimiterSetTogglesOff(t *testing.T) {
	on, off := true, false
	c := &clock{time.Unix(1000, 0)}
	l := NewLimiter(Limits{Enabled: &off}, c.now)
	for _, tc := range []struct {
		name   string
		limits *Limits // nil: keep the limits in force
		want   int     // of 10 token requests in one second
	}{
		{"off from the start", nil, 10},
		{"turned on", &Limits{Enabled: &on, IdentityRPS: 3}, 3},
		{"turned off", &Limits{Enabled: &off}, 10},
		{"on again", &Limits{Enabled: &on, IdentityRPS: 2}, 2},
		{"on by default (Enabled unset)", &Limits{IdentityRPS: 4}, 4},
	} {
		if tc.limits != nil {
			l.Set(*tc.limits)
		}
		c.t = c.t.Add(time.Second)
		admitted := 0
		for i := 0; i < 10; i++ {
			if rel, ok := l.Admit("imds"); ok {
				admitted++
				rel()
			}
		}
		if admitted != tc.want {
			t.Errorf("%s: admitted %d of 10, want %d", tc.name, admitted, tc.want)
		}
	}
}
