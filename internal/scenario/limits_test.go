package scenario

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idharness/idharness/pkg/yamlfile"
)

// parseCase is one change to base and the error it must cause.
type parseCase struct {
	name     string
	old, new string // replace old by new in base
	want     string // the error's prefix: file:line: field
	contains string // and a part of the rest of the message
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("base lacks %q", tc.old)
			}
			_, err := Parse("t.yaml", []byte(strings.Replace(base, tc.old, tc.new, 1)))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) || ye.Line == 0 {
				t.Fatalf("error %T %v, want a *yamlfile.Error with a line", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error\n  %v\nwant prefix\n  %s\nand %q in it", err, tc.want, tc.contains)
			}
		})
	}
}

// maxDur is close to the longest duration time.Duration holds: two of
// them, or one and a few seconds, overflow.
const maxDur = "2562047h47m16s"

const group = "    - {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web}\n"

// TestParseBoundsCountsAndDurations: every count and duration a scenario
// states is bounded, so that no sum or product of them overflows and no
// run allocates without end.
func TestParseBoundsCountsAndDurations(t *testing.T) {
	faultLine := "    fault: {name: down, action: {type: status, status: 503}}"
	runParseCases(t, []parseCase{
		{"two groups of MaxInt64 clients", group,
			"    - {name: mi, client: raw, count: 9223372036854775807, every: 1s}\n    - {name: mj, client: raw, count: 9223372036854775807, every: 1s}\n",
			"t.yaml:16: workload.clients[0].count: ", "at most 500"},
		{"one group over the limit", "count: 2", "count: 501", "t.yaml:16: workload.clients[0].count: ", "at most 500"},
		{"groups together over the limit", group,
			"    - {name: mi, client: raw, count: 300, every: 1s}\n    - {name: mj, client: raw, count: 300, every: 1s}\n",
			"t.yaml:17: workload.clients[1].count: ", "600 clients"},
		{"default counts together over the limit", group,
			"    - {name: mi, client: raw, count: 500, every: 1s}\n    - {name: mj, client: raw, every: 1s}\n",
			"t.yaml:17: workload.clients[1]", "501 clients"},
		{"start and spread overflow", "every: 1s,", "every: 1s, start: " + maxDur + ", spread: " + maxDur + ",",
			"t.yaml:16: workload.clients[0].start: ", "at most 20m0s"},
		{"spread overflows with start", "every: 1s,", "every: 1s, start: 5s, spread: " + maxDur + ",",
			"t.yaml:16: workload.clients[0].spread: ", "at most 20m0s"},
		{"every beyond any run", "every: 1s", "every: " + maxDur, "t.yaml:16: workload.clients[0].every: ", "at most 20m0s"},
		{"timeout beyond any run", "every: 1s,", "every: 1s, timeout: " + maxDur + ",", "t.yaml:16: workload.clients[0].timeout: ", "at most 20m0s"},
		{"step for overflows at+for", "for: 3s", "for: " + maxDur, "t.yaml:11: timeline[0].for: ", "at most 20m0s"},
		{"token lifetime", "  seed: 1", "  seed: 1\n  tokenLifetime: " + maxDur, "t.yaml:6: setup.tokenLifetime: ", "at most 24h0m0s"},
		{"token refresh", "  seed: 1", "  seed: 1\n  tokenRefreshBefore: " + maxDur, "t.yaml:6: setup.tokenRefreshBefore: ", "at most 24h0m0s"},
		{"identity token lifetime", "{name: web,", "{name: web, tokenLifetime: " + maxDur + ",", "t.yaml:7: setup.identities[0].tokenLifetime: ", "at most 24h0m0s"},
		{"lifetime step", faultLine, "    lifetime: {lifetime: " + maxDur + "}", "t.yaml:12: timeline[0].lifetime.lifetime: ", "at most 24h0m0s"},
		{"throttle window allocation", "  seed: 1", "  seed: 1\n  throttle: {metadataRps: 9223372036854775807}", "t.yaml:6: setup.throttle.metadataRps: ", "at most 1000"},
		{"throttle identity rate", "  seed: 1", "  seed: 1\n  throttle: {identityRps: 1000001}", "t.yaml:6: setup.throttle.identityRps: ", "at most 1000"},
		{"throttle concurrency", "  seed: 1", "  seed: 1\n  throttle: {identityConcurrency: 9223372036854775807}", "t.yaml:6: setup.throttle.identityConcurrency: ", "at most 1000"},
		{"throttle retry-after", "  seed: 1", "  seed: 1\n  throttle: {retryAfter: 2562047h}", "t.yaml:6: setup.throttle.retryAfter: ", "at most 24h0m0s"},
		{"latency delays add up", faultLine, "    fault: {name: down, action: {type: latency, delay: " + maxDur + "}}", "t.yaml:12: timeline[0].fault.action.delay: ", "at most 24h0m0s"},
		{"latency jitter", faultLine, "    fault: {name: down, action: {type: latency, delay: 1s, distribution: normal, jitter: " + maxDur + "}}", "t.yaml:12: timeline[0].fault.action.jitter: ", "at most 24h0m0s"},
		{"expired token age", faultLine, "    fault: {name: down, action: {type: expired-token, ago: " + maxDur + "}}", "t.yaml:12: timeline[0].fault.action.ago: ", "at most 24h0m0s"},
		{"clock skew", faultLine, "    fault: {name: down, action: {type: clock-skew, offset: -" + maxDur + "}}", "t.yaml:12: timeline[0].fault.action.offset: ", "at most 24h0m0s"},
		{"status retry-after", "status: 503}", "status: 503, retryAfter: " + maxDur + "}", "t.yaml:12: timeline[0].fault.action.retryAfter: ", "at most 24h0m0s"},
		{"minimum token time left", "{kind: recovers, step: outage, within: 2s}", "{kind: token-lifetime-left, minRemaining: " + maxDur + "}", "t.yaml:18: expect[0].minRemaining: ", "at most 24h0m0s"},
	})
}

// TestCheckClusterCountsWithoutOverflow: the in-cluster pod count cannot
// wrap around, even for a scenario that skipped Parse's bounds.
func TestCheckClusterCountsWithoutOverflow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts []int
		ok     bool
	}{
		{"two MaxInt groups", []int{math.MaxInt, math.MaxInt}, false},
		{"MaxInt and one", []int{math.MaxInt, 1}, false},
		{"over by one", []int{60, 41}, false},
		{"at the limit", []int{60, 40}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Scenario{file: "t.yaml", data: []byte(base)}
			for i, n := range tc.counts {
				s.Workload.Clients = append(s.Workload.Clients, ClientGroup{Name: string(rune('a' + i)), Client: "raw", Count: n})
			}
			err := s.CheckCluster()
			if (err == nil) != tc.ok {
				t.Fatalf("CheckCluster(%v) = %v, want ok %v", tc.counts, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "at most 100") {
				t.Errorf("error %v does not name the limit", err)
			}
		})
	}
}

// TestLoadFileBoundsSize: a scenario file is read only up to MaxFileSize.
func TestLoadFileBoundsSize(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		padding int
		wantErr string
	}{
		{"small", 0, ""},
		{"too large", MaxFileSize + 1, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".yaml")
			data := base + "#" + strings.Repeat("x", tc.padding) + "\n"
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), p) {
				t.Fatalf("error %v, want %q naming %s", err, tc.wantErr, p)
			}
		})
	}
}

// TestParseLocatesEveryError: decoding errors that the field decoders
// or the YAML library report without a position get file:line too.
func TestParseLocatesEveryError(t *testing.T) {
	faultLine := "    fault: {name: down, action: {type: status, status: 503}}"
	runParseCases(t, []parseCase{
		{"duration given as a list", "every: 1s", "every: [1]", "t.yaml:16: workload.clients[0].every: ", "want a duration"},
		{"duration list in a fault", faultLine, "    fault: {name: down, action: {type: latency, delay: [5]}}", "t.yaml:12: timeline[0].fault.action.delay: ", "want a duration"},
		{"fault action without type", "action: {type: status, status: 503}", "action: {status: 503}", "t.yaml:12: timeline[0].fault.action: ", "type is required"},
		{"NaN probability", "status: 503}}", "status: 503}, match: {probability: .nan}}", "t.yaml:12: timeline[0].fault.match.probability: ", "finite number"},
		{"infinite percentage", "{kind: recovers, step: outage, within: 2s}", "{kind: success-rate, minPercent: .inf}", "t.yaml:18: expect[0].minPercent: ", "finite number"},
		{"second document", "expect:\n", "expect:\n  - {kind: own-identity}\n---\nid: u\nexpect:\n", "t.yaml:19: ", "second YAML document"},
		{"control character", "title: test", "title: te\x01st", "t.yaml:2: ", "control characters"},
		{"unknown anchor", "title: test", "title: *name", "t.yaml:2: ", "unknown anchor"},
		{"wrong type in the second group", group, group + "    - {name: mj, client: raw, count: 1.5, every: 1s}\n", "t.yaml:17: workload.clients[1].count: ", "1.5"},
		{"integer out of range", "count: 2", "count: 99999999999999999999", "t.yaml:16: workload.clients[0].count: ", "whole number"},
		// An expectation's parameters are checked against its kind: the
		// error names the parameter's path and what the kind takes.
		{"unknown field known elsewhere", "within: 2s}", "within: 2s, count: 2}", "t.yaml:18: expect[0].count: ", "unknown parameter of recovers expectations; they take step, after, within"},
	})
}
