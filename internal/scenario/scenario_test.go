package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/idharness/idharness/scenarios"

	"github.com/idharness/idharness/pkg/yamlfile"
)

// base is a valid scenario; the error cases each change one thing in it.
// Its line numbers matter to the cases.
const base = `id: t
title: test
links: [https://example.com/incident]
setup:
  seed: 1
  identities:
    - {name: web, clientId: 3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01, objectId: 4d2a0b8f-3c5e-4f70-9b2c-0d1e2f3a4b02}
timeline:
  - name: outage
    at: 2s
    for: 3s
    fault: {name: down, action: {type: status, status: 503}}
workload:
  duration: 10s
  clients:
    - {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web}
expect:
  - {kind: recovers, step: outage, within: 2s}
`

func TestParseBase(t *testing.T) {
	s, err := Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "t" || s.Duration().Seconds() != 10 || len(s.Timeline) != 1 || s.Timeline[0].Kind != "fault" ||
		s.Workload.Clients[0].Clients() != 2 || s.Timeline[0].End().Seconds() != 5 {
		t.Errorf("parsed %+v", s)
	}
	if _, ok := s.Identity("web"); !ok {
		t.Error("identity web not found")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name     string
		old, new string // replace old by new in base; old "" replaces all
		want     string // the error's prefix: file:line: field
	}{
		{"empty file", "", "\n", "t.yaml: file is empty"},
		{"YAML syntax", "title: test", "title: test: more", "t.yaml:2: mapping values are not allowed"},
		{"duplicate key", "title: test", "title: test\ntitle: again", "t.yaml:3: key \"title\" already set"},
		{"unknown top-level field", "title: test", "title: test\ncolour: red", "t.yaml:3: colour: unknown field"},
		{"unknown step field", "    for: 3s", "    for: 3s\n    until: 9s", "t.yaml:12: until: unknown field"},
		{"bad duration", "at: 2s", "at: 2x", "t.yaml:10: timeline[0].at: want a duration"},
		{"duration as number", "at: 2s", "at: 7", "t.yaml:10: timeline[0].at: want a duration"},
		{"bad workload duration", "duration: 10s", "duration: ten", "t.yaml:14: workload.duration: want a duration"},
		{"unknown fault type", "type: status", "type: stauts", "t.yaml:12: timeline[0].fault.action.type: unknown action type"},
		{"unknown fault parameter", "status: 503", "statsu: 503", "t.yaml:12: statsu: unknown field"},
		{"bad fault parameter", "status: 503", "status: 999", "t.yaml:12: timeline[0].fault.action: status"},
		{"fault without name", "name: down, ", "", "t.yaml:12: timeline[0].fault.name: required"},
		{"fault schedule", "status: 503}", "status: 503}, schedule: {after: 1s}", "t.yaml:12: timeline[0].fault.schedule: leave it out"},
		{"bad id", "id: t", "id: T_1", "t.yaml:1: id: want lower-case"},
		{"no title", "title: test", "title: ''", "t.yaml:2: title: required"},
		{"bad spec id", "title: test", "title: test\nspec: {id: CHAOS-1, level: MUST, statement: a client MUST}", "t.yaml:3: spec.id: want IDH-CHAOS-"},
		{"bad spec level", "title: test", "title: test\nspec: {id: IDH-CHAOS-0099, level: MAY, statement: a client MAY}", "t.yaml:3: spec.level: want MUST or SHOULD"},
		{"statement without its level", "title: test", "title: test\nspec: {id: IDH-CHAOS-0099, level: MUST, statement: a client gets a token}", "t.yaml:3: spec.statement: state the requirement with its MUST"},
		{"unknown spec field", "title: test", "title: test\nspec: {id: IDH-CHAOS-0099, level: MUST, statement: a client MUST, owner: me}", "t.yaml:3: owner: unknown field"},
		{"no links", "links: [https://example.com/incident]", "links: []", "t.yaml:3: links: required"},
		{"http link", "https://example.com/incident", "http://example.com/incident", "t.yaml:3: links[0]: want an https:// URL"},
		{"bad client ID", "clientId: 3c1f9a7e-2b4d-4e6f-8a1b-9c0d1e2f3a01", "clientId: web", "t.yaml:7: setup.identities[0].clientId: want a GUID"},
		{"identity named system", "{name: web,", "{name: system,", "t.yaml:7: setup.identities[0].name"},
		{"unattached unknown", "  seed: 1", "  seed: 1\n  unattached: [api]", "t.yaml:6: setup.unattached[0]: \"api\" is not one of"},
		{"negative lifetime", "  seed: 1", "  seed: 1\n  tokenLifetime: -1s", "t.yaml:6: setup.tokenLifetime: must not be negative"},
		{"bad throttle", "  seed: 1", "  seed: 1\n  throttle: {identityRps: -1}", "t.yaml:6: setup.throttle: "},
		{"no workload duration", "  duration: 10s\n", "", "t.yaml:13: workload.duration: required"},
		{"workload too long", "duration: 10s", "duration: 21m", "t.yaml:14: workload.duration: at most"},
		{"no clients", "  clients:\n    - {name: mi, client: azidentity-mi, count: 2, every: 1s, identity: web}\n", "", "t.yaml:13: workload.clients: required"},
		{"unknown client", "client: azidentity-mi", "client: python", `t.yaml:16: workload.clients[0].client: unknown client "python"; want one of`},
		{"client without the mode", "client: azidentity-mi", "client: azidentity-wi", "t.yaml:16: workload.clients[0].client: azidentity-wi: WorkloadIdentityCredential does not support mode imds"},
		{"workload identity without identity", "  seed: 1", "  seed: 1\n  workloadIdentity: {}", "t.yaml:6: setup.workloadIdentity.identity: required"},
		{"workload identity unknown identity", "  seed: 1", "  seed: 1\n  workloadIdentity: {identity: api}", "t.yaml:6: setup.workloadIdentity.identity: \"api\" is not one of"},
		{"old kind field", "client: azidentity-mi", "kind: azidentity-managed-identity", "t.yaml:16: kind: unknown field"},
		{"bad group name", "{name: mi,", "{name: Mi,", "t.yaml:16: workload.clients[0].name"},
		{"too frequent", "every: 1s", "every: 10ms", "t.yaml:16: workload.clients[0].every"},
		{"no every", "every: 1s, ", "", "t.yaml:16: workload.clients[0].every"},
		{"negative count", "count: 2", "count: -2", "t.yaml:16: workload.clients[0].count"},
		{"too many clients", "count: 2", "count: 501", "t.yaml:16: workload.clients[0].count: 501 clients"},
		{"starts after end", "every: 1s,", "every: 1s, start: 10s,", "t.yaml:16: workload.clients[0].start"},
		{"unknown client identity", "identity: web}", "identity: api}", "t.yaml:16: workload.clients[0].identity"},
		{"default credential with identity", "client: azidentity-mi", "client: azidentity-default", "t.yaml:16: workload.clients[0].identity: azidentity-default takes a user-assigned identity only from AZURE_CLIENT_ID"},
		{"bad selectBy", "identity: web}", "identity: web, selectBy: name}", "t.yaml:16: workload.clients[0].selectBy"},
		{"selectBy without identity", ", identity: web}", ", selectBy: objectId}", "t.yaml:16: workload.clients[0].selectBy: only with identity"},
		{"bad resource", "identity: web}", "identity: web, resource: vault}", "t.yaml:16: workload.clients[0].resource"},
		{"two actions", "    for: 3s\n", "    for: 3s\n    attach: web\n", "t.yaml:9: timeline[0]: want exactly one of"},
		{"no action", "    fault: {name: down, action: {type: status, status: 503}}\n", "", "t.yaml:9: timeline[0]: want exactly one of"},
		{"step after end", "at: 2s", "at: 12s", "t.yaml:10: timeline[0].at: 12s is not before"},
		{"negative for", "for: 3s", "for: -3s", "t.yaml:11: timeline[0].for: must not be negative"},
		{"bad step name", "name: outage", "name: Outage", "t.yaml:9: timeline[0].name"},
		{"attach unknown", "    fault: {name: down, action: {type: status, status: 503}}", "    attach: api", "t.yaml:12: timeline[0].attach"},
		{"detach unknown", "    fault: {name: down, action: {type: status, status: 503}}", "    detach: api", "t.yaml:12: timeline[0].detach"},
		{"lifetime without value", "    fault: {name: down, action: {type: status, status: 503}}", "    lifetime: {}", "t.yaml:12: timeline[0].lifetime.lifetime: required"},
		{"lifetime unknown identity", "    fault: {name: down, action: {type: status, status: 503}}", "    lifetime: {identity: api, lifetime: 6m}", "t.yaml:12: timeline[0].lifetime.identity"},
		{"duplicate step names", "workload:", "  - {name: outage, at: 1s, detach: web}\nworkload:", "t.yaml:13: timeline[1].name: \"outage\" is used twice"},
		{"duplicate rule names", "workload:", "  - {at: 1s, fault: {name: down, action: {type: throttle}}}\nworkload:", "t.yaml:13: timeline[1].fault.name"},
		{"findingOnlyWhen without finding", "within: 2s}", "within: 2s, findingOnlyWhen: IMDS answers the probe}", "t.yaml:18: expect[0].findingOnlyWhen: only with finding"},
		{"unknown step kind", "    fault: {name: down, action: {type: status, status: 503}}", "    pause: {}", "t.yaml:12: pause: unknown field"},
		{"throttle above the bound", "    fault: {name: down, action: {type: status, status: 503}}", "    throttle: {identityRps: 5000}", "t.yaml:12: timeline[0].throttle.identityRps: 5000: at most 1000"},
		{"throttle unknown parameter", "    fault: {name: down, action: {type: status, status: 503}}", "    throttle: {rps: 5}", "t.yaml:12: rps: unknown field"},
		{"throttle retry-after in fractions", "    fault: {name: down, action: {type: status, status: 503}}", "    throttle: {retryAfter: 1500ms}", "t.yaml:12: timeline[0].throttle: retryAfter 1.5s: must be whole seconds"},
		{"restart with for", "    fault: {name: down, action: {type: status, status: 503}}", "    restart: {agent: pod-identity}", "t.yaml:11: timeline[0].for: a restart step cannot be undone"},
		{"restart of nothing", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restart: {}", "t.yaml:11: timeline[0].restart: set exactly one of daemonSet"},
		{"restart unknown role", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restart: {agent: webhook}", "t.yaml:11: timeline[0].restart.agent: want pod-identity"},
		{"partition without for", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    partition: {to: api-server}", "t.yaml:9: timeline[0].for: required: a partition step must end"},
		{"partition of nothing", "    fault: {name: down, action: {type: status, status: 503}}", "    partition: {to: authority}", "t.yaml:12: timeline[0].partition.to: want api-server"},
		{"restartNode with for", "    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {}", "t.yaml:11: timeline[0].for: a restartNode step cannot be undone"},
		{"restartNode naming a node", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {node: worker}", "t.yaml:11: node: unknown field"},
		{"restartNode negative wait", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {ready: -1s}", "t.yaml:11: timeline[0].restartNode.ready: want a wait between 0 and 20m0s, got -1s"},
		{"restartNode unbounded wait", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {ready: 21m}", "t.yaml:11: timeline[0].restartNode.ready: want a wait between 0 and 20m0s, got 21m0s"},
		{"restartNode twice", "    for: 3s\n    fault: {name: down, action: {type: status, status: 503}}", "    restartNode: {}\n  - at: 4s\n    restartNode: {}", "t.yaml:11: timeline[0].restartNode: 2 restartNode steps: a run restarts its node once"},
		{"unbind without pod identity", "    fault: {name: down, action: {type: status, status: 503}}", "    unbind: {identity: web, selector: web}", "t.yaml:12: timeline[0].unbind: needs setup.podIdentity"},
		{"bind without pod identity", "    fault: {name: down, action: {type: status, status: 503}}", "    bind: {identity: web, selector: web}", "t.yaml:12: timeline[0].bind: needs setup.podIdentity"},
		{"unknown condition", "    for: 3s", "    for: 3s\n    after: first-token", "t.yaml:12: timeline[0].after: want tokens-held"},
		{"no expectations", "expect:\n  - {kind: recovers, step: outage, within: 2s}\n", "expect: []\n", "t.yaml:17: expect: required"},
		{"unknown expectation", "kind: recovers", "kind: works", "t.yaml:18: expect[0].kind: want one of"},
		{"unknown expectation field", "within: 2s}", "within: 2s, soon: true}", "t.yaml:18: expect[0].soon: unknown parameter of recovers expectations; they take step, after, within"},
		{"unknown expectation kind on its own line", "  - {kind: recovers, step: outage, within: 2s}", "  - kind: retries\n    within: 2s", "t.yaml:18: expect[0].kind: want one of cached, fault-reached, honours-retry-after,"},
		{"no expectation kind", "{kind: recovers, step: outage, within: 2s}", "{step: outage, within: 2s}", "t.yaml:18: expect[0].kind: required: one of cached,"},
		{"unknown parameter on a later line", "  - {kind: recovers, step: outage, within: 2s}", "  - kind: recovers\n    step: outage\n    within: 2s\n    retries: 3", "t.yaml:21: expect[0].retries: unknown parameter of recovers expectations; they take step, after, within (and description, clients, finding, findingOnlyWhen)"},
		{"parameter of another kind on a later line", "  - {kind: recovers, step: outage, within: 2s}", "  - kind: statuses\n    status: 429\n    min: 1\n    within: 2s", "t.yaml:21: expect[0].within: does not apply to statuses expectations (they take step, from, to, min, max, status, total)"},
		{"parameter of the first kind in the second expectation", "  - {kind: recovers, step: outage, within: 2s}", "  - {kind: recovers, step: outage, within: 2s}\n  - {kind: own-identity, within: 2s}", "t.yaml:19: expect[1].within: does not apply to own-identity expectations (they take only description, clients, finding, findingOnlyWhen)"},
		{"bad value of a parameter", "within: 2s}", "within: 2s}\n  - {kind: statuses, status: many, min: 1}", "t.yaml:19: expect[1].status: want a whole number, got string"},
		{"retry budget of zero", "{kind: recovers, step: outage, within: 2s}", "{kind: retry-budget, max: 0}", "t.yaml:18: expect[0].max: want at least 1 request per call, got 0"},
		{"statuses without bounds", "{kind: recovers, step: outage, within: 2s}", "{kind: statuses, status: 429}", "t.yaml:18: expect[0].max: required (or min)"},
		{"bad status", "{kind: recovers, step: outage, within: 2s}", "{kind: statuses, status: 99, min: 1}", "t.yaml:18: expect[0].status: want an HTTP status"},
		{"success-rate by what", "{kind: recovers, step: outage, within: 2s}", "{kind: success-rate, minPercent: 50, by: middle}", "t.yaml:18: expect[0].by: want end"},
		{"min above max", "{kind: recovers, step: outage, within: 2s}", "{kind: requests-per-call, min: 3, max: 2}", "t.yaml:18: expect[0].max: 2 is below min 3"},
		{"never-recovers step and after", "{kind: recovers, step: outage, within: 2s}", "{kind: never-recovers, step: outage, after: 1s}", "t.yaml:18: expect[0].step: give either step or after"},
		{"field of another kind", "within: 2s}", "within: 2s, max: 3}", "t.yaml:18: expect[0].max: does not apply to recovers"},
		{"unknown step", "step: outage", "step: storm", "t.yaml:18: expect[0].step: no timeline step"},
		{"step and from", "within: 2s}", "within: 2s, after: 1s}", "t.yaml:18: expect[0].step: give either"},
		{"no within", ", within: 2s}", "}", "t.yaml:18: expect[0].within: required"},
		{"recovery past the end", "within: 2s", "within: 6s", "t.yaml:18: expect[0].within: recovery is checked until"},
		{"unknown group", "within: 2s}", "within: 2s, clients: raw}", "t.yaml:18: expect[0].clients"},
		{"max-rate without max", "{kind: recovers, step: outage, within: 2s}", "{kind: max-rate}", "t.yaml:18: expect[0].max: required"},
		{"bad percentage", "{kind: recovers, step: outage, within: 2s}", "{kind: success-rate, minPercent: 150}", "t.yaml:18: expect[0].minPercent"},
		{"no latency bound", "{kind: recovers, step: outage, within: 2s}", "{kind: max-latency}", "t.yaml:18: expect[0].maxLatency: required"},
		{"cached without window", "{kind: recovers, step: outage, within: 2s}", "{kind: cached}", "t.yaml:18: expect[0].step: required"},
		{"to before from", "{kind: recovers, step: outage, within: 2s}", "{kind: cached, from: 5s, to: 3s}", "t.yaml:18: expect[0].to: must be after from"},
		{"window past the end", "{kind: recovers, step: outage, within: 2s}", "{kind: cached, from: 5s, to: 30s}", "t.yaml:18: expect[0].to: 30s is beyond"},
		{"bad expectation duration", "within: 2s", "within: soon", "t.yaml:18: expect[0].within: want a duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := base
			if tc.old == "" {
				src = tc.new
			} else {
				if !strings.Contains(base, tc.old) {
					t.Fatalf("base lacks %q", tc.old)
				}
				src = strings.Replace(base, tc.old, tc.new, 1)
			}
			_, err := Parse("t.yaml", []byte(src))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) {
				t.Fatalf("error %T %v, want a *yamlfile.Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant prefix\n  %s", err, tc.want)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil || !strings.Contains(err.Error(), "read scenario") {
		t.Fatalf("error %v, want it to say the file could not be read", err)
	}
}

// TestShippedScenarios lints every file in scenarios/ and checks the
// conventions the list of shipped scenarios in docs/scenarios.md (moved there
// from the README) relies on.
func TestShippedScenarios(t *testing.T) {
	dir := filepath.Join("..", "..", "scenarios")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("%d scenario files in %s, want at least 8", len(files), dir)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "scenarios.md"))
	if err != nil {
		t.Fatalf("the shipped scenarios are listed in docs/scenarios.md: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") && e.Name() != "README.md" && e.Name() != "embed.go" {
			t.Errorf("scenarios/%s: only scenario files (.yaml), README.md and embed.go belong there", e.Name())
		}
	}
	// The embedded copy the idharness binary plays is the same set.
	embedded, err := LoadFS(scenarios.FS(), "scenarios")
	if err != nil {
		t.Fatal(err)
	}
	if len(embedded) != len(files) {
		t.Errorf("%d embedded scenarios, %d files", len(embedded), len(files))
	}
	if _, err := Specs(embedded); err != nil {
		t.Error(err)
	}
	link := regexp.MustCompile(`^https://(github\.com/(Azure|AzureAD|MicrosoftDocs)/|learn\.microsoft\.com/)`)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); s.ID != want {
				t.Errorf("id %q, want the file name %q", s.ID, want)
			}
			for _, l := range s.Links {
				if !link.MatchString(l) {
					t.Errorf("link %s: want a GitHub issue of an Azure repository or a Microsoft documentation page", l)
				}
			}
			if s.Description == "" {
				t.Error("no description")
			}
			for _, e := range s.Expect {
				if e.Finding != "" && len(e.Finding) < 40 {
					t.Errorf("finding %q: explain the client behaviour measured", e.Finding)
				}
			}
			if len(readme) > 0 && !strings.Contains(string(readme), "`"+s.ID+"`") {
				t.Errorf("docs/scenarios.md does not list scenario %s", s.ID)
			}
		})
	}
}

// FuzzScenarioLoad checks that no input makes the loader panic, and that
// every error it returns is located in the file.
func FuzzScenarioLoad(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("id: x\ntimeline: [{at: 1s, for: 2s, fault: {name: a, action: {type: latency, delay: 1s}}}]"))
	f.Add([]byte("expect: [{kind: max-rate, max: -1, window: 1h}]"))
	if files, _ := filepath.Glob(filepath.Join("..", "..", "scenarios", "*.yaml")); len(files) > 0 {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data)
		if err != nil {
			var ye *yamlfile.Error
			if !errors.As(err, &ye) || ye.File != "f.yaml" {
				t.Fatalf("error %T %v, want a *yamlfile.Error naming the file", err, err)
			}
			return
		}
		// A valid scenario must describe and configure without trouble.
		for i := range s.Expect {
			_ = s.Expect[i].Describe(s)
		}
		if _, err := s.ServerConfig(); err != nil {
			t.Fatalf("valid scenario, bad server config: %v", err)
		}
	})
}
