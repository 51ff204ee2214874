package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.

	fchaos "github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/report"
	. "github.com/idharness/idharness/suites/framework" //nolint:revive // the suite's own DSL.
)

// Bounds of the timing assertions. They come from the SDKs' documented
// retry behaviour plus margins set from measured run-to-run spread (see
// docs/chaos.md for the measurements).
const (
	// azidentity's IMDS retry policy backs off exponentially with jitter,
	// capped at 25 s between tries: a call that is still retrying when a
	// fault ends gets its token up to ~25 s later, plus a try's own time.
	// Measured 0.2–9.0 s (spread 5.5 s in three runs); the bound follows
	// the cap, since the jitter can land anywhere below it.
	azidentityRecoveryBound = 30 * time.Second
	// Clients that give up and are called again by the application (the
	// probe's 2 s loop) recover within the loop interval plus one call:
	// at most 2.0 s in three runs (spread 1.6 s), so 2 s of margin.
	appRetryRecoveryBound = 4 * time.Second
)

// The clients the IMDS chaos specs run: azidentity's two credentials,
// MSAL Go and a plain GET with no retry and no cache.
var imdsClients = []string{probe.ClientAzidentityMI, probe.ClientAzidentityDefault, probe.ClientMSALMI, probe.ClientRaw}

// outageTimeout is a client's per-call deadline in the outage specs: the
// raw client is the application's own loop, which must not sit on a
// blackholed connection past the outage; the SDKs get the usual bound.
func outageTimeout(client string) string {
	if client == probe.ClientRaw {
		return "3s"
	}
	return "60s"
}

// vaultResource is the protected resource's audience.
const vaultResource = "https://vault.azure.net"

// resourceFor is a resource of the spec's and the client's own, so that a
// rule scoped by match.resource hits one client of one spec only.
func resourceFor(id, client string) string {
	return "https://chaos.idharness.test/" + strings.ToLower(id) + "/" + client
}

// verdictOf is passed or failed.
func verdictOf(ok bool) string {
	if ok {
		return report.Passed
	}
	return report.Failed
}

// Ordered for the shared BeforeAll; ContinueOnFailure so that one failed
// spec does not skip the verdicts of the others.
var _ = Describe("chaos: IMDS under fault", Label("imds", "system-assigned"), Ordered, ContinueOnFailure, func() {
	BeforeAll(func(ctx SpecContext) { Setup(ctx) })

	for _, slow := range []struct {
		id, delay, rule string
	}{
		{"IDH-CHAOS-0001", "1.2s", "first-byte-1200ms"},
		{"IDH-CHAOS-0010", "5s", "first-byte-5s"},
	} {
		Chaos(slow.id, SHOULD, "a client whose IMDS answers take "+strings.Replace(slow.delay, "s", " s", 1)+" to the first byte SHOULD still get its token; DefaultAzureCredential's 1 s IMDS probe falls through instead (a known finding)",
			[]string{"latency", "imds-mode"}, func(ctx SpecContext) {
				fr := begin(ctx)
				fr.inject(ctx, rule(`{"name":"`+slow.rule+`","match":{"faces":["imds"]},"action":{"type":"latency","delay":"`+slow.delay+`","where":"before-headers"}}`))
				results := fr.probeEach(ctx, Namespace(ctx), imdsClients, 2*time.Minute, func(c string) []string {
					return []string{"--count=2", "--interval=2s", "--timeout=30s", "--resource=" + resourceFor(slow.id, c)}
				})
				// A node agent in the path (the reference profile passes
				// pods outside pod identity namespaces through) answers
				// the header-less probe itself, so the latency never
				// reaches it.
				probeDelayed := false
				for _, e := range fr.journal(ctx) {
					probeDelayed = probeDelayed || (clientOf(e) == probe.ClientAzidentityDefault && e.Headers["Metadata"] == "" && len(e.Faults) > 0)
				}
				outcomes := map[string]clientOutcome{}
				var problems []string
				for c, rs := range ByClient(results) {
					allOK, slowest := true, time.Duration(0)
					var errText string
					for _, r := range rs {
						slowest = max(slowest, r.LatencyMs.D())
						if !r.OK() {
							allOK, errText = false, r.Error
						}
					}
					switch {
					case c == probe.ClientAzidentityDefault && !allOK:
						outcomes[c] = clientOutcome{VerdictFinding, "falls through: " + lineWith(errText, "ManagedIdentityCredential")}
					case c == probe.ClientAzidentityDefault && !probeDelayed:
						outcomes[c] = clientOutcome{report.Passed, fmt.Sprintf("slowest call %s: its header-less probe was answered before the fake (by the node agent), without the latency", slowest.Round(100*time.Millisecond))}
					case c == probe.ClientAzidentityDefault:
						outcomes[c] = clientOutcome{report.Failed, "unexpected pass: the 1 s probe no longer falls through; update the finding"}
						problems = append(problems, c+": got every token although IMDS answered after "+slow.delay+": the known finding no longer reproduces")
					default:
						outcomes[c] = clientOutcome{verdictOf(allOK), fmt.Sprintf("slowest call %s", slowest.Round(100*time.Millisecond))}
						if !allOK {
							problems = append(problems, c+": "+firstLine(errText))
						}
					}
				}
				fr.finish(ctx, results, fr.windowOf(slow.rule), outcomes)
				Expect(problems).To(BeEmpty())
			})
	}

	Chaos("IDH-CHAOS-0002", MUST, "a client that retries MUST get its token once a 70 s window of 410 (IMDS is back within 70 s, its documentation says) 'IMDS is going through updates' ends, and every client MUST have one soon after",
		[]string{"status-410", "slow", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			fr.inject(ctx, rule(`{"name":"imds-updating-70s","match":{"faces":["imds"],"headerPresent":["Metadata"]},"action":{"type":"imds-updating"},"schedule":{"for":"70s"}}`))
			w := fr.windowOf("imds-updating-70s")
			results := fr.probeEach(ctx, Namespace(ctx), imdsClients, 4*time.Minute, func(c string) []string {
				return []string{"--duration=110s", "--interval=2s", "--timeout=110s", "--resource=" + resourceFor("IDH-CHAOS-0002", c)}
			})
			outcomes := map[string]clientOutcome{}
			var problems []string
			for c, rs := range ByClient(results) {
				row := resilience(c, rs, w, clientOutcome{})
				bound := appRetryRecoveryBound
				if c == probe.ClientAzidentityMI || c == probe.ClientAzidentityDefault {
					bound = azidentityRecoveryBound
				}
				ok := recoveredWithin(row, bound)
				note := "kept its first call retrying through the window"
				if row.GaveUpAfter != nil {
					note = fmt.Sprintf("gave up after %.1fs, the application's next call succeeded", float64(*row.GaveUpAfter))
				}
				outcomes[c] = clientOutcome{verdictOf(ok), note}
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: recovered %s after the 410s ended, bound %s", c, recovered(row), bound))
				}
			}
			fr.finish(ctx, results, w, outcomes)
			Expect(problems).To(BeEmpty())
		})

	for _, storm := range []struct {
		id, statement string
		retryAfter    time.Duration
	}{
		{"IDH-CHAOS-0003", "when 32 pods start together against IMDS's limits (20 token requests a second, 5 at a time) answering 429 with Retry-After: 2, every pod MUST get its token, no call MUST send more requests than its client's documented retries allow, and azidentity MUST wait the 2 s it was told", 2 * time.Second},
		{"IDH-CHAOS-0004", "when 32 pods start together against IMDS's limits (20 token requests a second, 5 at a time) answering 429 without Retry-After, every pod MUST get its token and no call MUST send more requests than its client's documented retries allow", 0},
	} {
		Chaos(storm.id, MUST, storm.statement, []string{"status-429", "throttle", "storm", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			fr.throttle(ctx, fchaos.Limits{IdentityRPS: 20, IdentityConcurrency: 5, RetryAfter: duration.Duration{Duration: storm.retryAfter}})
			results, outcomes, problems := fr.storm(ctx, storm.id, storm.retryAfter)
			fr.finish(ctx, results, window{}, outcomes)
			Expect(problems).To(BeEmpty())
		})
	}

	for _, outage := range []struct {
		id, kind, how string
	}{
		{"IDH-CHAOS-0005", "refuse", "connection refused"},
		{"IDH-CHAOS-0014", "blackhole", "connections accepted, never answered"},
	} {
		Chaos(outage.id, MUST, "a client holding a valid token MUST keep serving it from its cache through a 30 s IMDS outage ("+outage.how+"), and a client without a cache MUST recover within 4 s of the outage's end",
			[]string{outage.kind, "outage", "imds-mode"}, func(ctx SpecContext) {
				fr := begin(ctx)
				ns := Namespace(ctx)
				wait := fr.probeEachInBackground(ctx, ns, imdsClients, 3*time.Minute, func(c string) []string {
					return []string{"--duration=60s", "--interval=2s", "--timeout=" + outageTimeout(c), "--resource=" + resourceFor(outage.id, c)}
				})
				// The outage starts once every client holds a token, whenever
				// its pod got scheduled.
				held := fr.waitForTokens(ctx, imdsClients, 60*time.Second)
				name := "outage-" + outage.kind + "-30s"
				fr.inject(ctx, rule(`{"name":"`+name+`","match":{"faces":["imds"]},"action":{"type":"`+outage.kind+`"},"schedule":{"for":"30s"}}`))
				w := fr.windowOf(name)
				results := wait()
				Expect(held).To(BeTrue(), "the probe pods did not all get a token within 60 s, so the outage could not start with cached tokens")
				outcomes := map[string]clientOutcome{}
				var problems []string
				for c, rs := range ByClient(results) {
					row := resilience(c, rs, w, clientOutcome{})
					var inWindow, cached, failed int
					for _, r := range rs {
						if !r.Time.Before(w.from) && r.Time.Before(w.to) {
							inWindow++
							switch {
							case !r.OK():
								failed++
							case r.FromCache:
								cached++
							}
						}
					}
					if c == probe.ClientRaw {
						// The raw client has no cache: it must see the
						// outage, or the outage did not happen.
						ok := failed > 0 && recoveredWithin(row, appRetryRecoveryBound)
						outcomes[c] = clientOutcome{verdictOf(ok), fmt.Sprintf("no cache: %d of %d calls in the outage failed", failed, inWindow)}
						if failed == 0 {
							problems = append(problems, fmt.Sprintf("%s: none of its %d calls in the outage failed: the outage did not reach the node's IMDS clients", c, inWindow))
						}
						if !ok && failed > 0 {
							problems = append(problems, fmt.Sprintf("%s: recovered %s after the outage (bound %s)", c, recovered(row), appRetryRecoveryBound))
						}
						continue
					}
					ok := inWindow > 0 && cached == inWindow
					outcomes[c] = clientOutcome{verdictOf(ok), fmt.Sprintf("%d of %d calls in the outage served from cache", cached, inWindow)}
					if !ok {
						problems = append(problems, fmt.Sprintf("%s: %d of %d calls in the outage were served from its cache", c, cached, inWindow))
					}
				}
				fr.finish(ctx, results, w, outcomes)
				Expect(problems).To(BeEmpty())
			})
	}

	Chaos("IDH-CHAOS-0006", SHOULD, "a client whose first token request hangs SHOULD get a token on the application's next call once its 8 s deadline cut the hung one off",
		[]string{"hang", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			results, outcomes, problems := fr.transient(ctx, "IDH-CHAOS-0006", "hang-first-", 1, `{"type":"hang","max":"20s"}`, "8s")
			fr.finish(ctx, results, window{}, outcomes)
			Expect(problems).To(BeEmpty())
		})

	Chaos("IDH-CHAOS-0007", SHOULD, "a client whose first two token requests are reset (TCP RST) SHOULD have a token by its third call",
		[]string{"reset", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			results, outcomes, problems := fr.transient(ctx, "IDH-CHAOS-0007", "reset-", 2, `{"type":"reset"}`, "30s")
			fr.finish(ctx, results, window{}, outcomes)
			Expect(problems).To(BeEmpty())
		})

	Chaos("IDH-CHAOS-0008", SHOULD, "a client given a 200 with a non-JSON body SHOULD return an error, never a token, and SHOULD have a token once the body is whole again",
		[]string{"malformed", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			results, outcomes, problems := fr.transient(ctx, "IDH-CHAOS-0008", "malformed-", 1, `{"type":"malformed","form":"non-json"}`, "30s")
			for _, r := range results {
				if r.OK() && r.ClaimsError != "" {
					problems = append(problems, fmt.Sprintf("%s returned a token that is not a JWT: %s", r.Client, r.ClaimsError))
				}
			}
			fr.finish(ctx, results, window{}, outcomes)
			Expect(problems).To(BeEmpty())
		})

	Chaos("IDH-CHAOS-0009", MUST, "a client that accepts a numeric expires_on (not IMDS's string) MUST read the expiry right; which clients accept it is recorded",
		[]string{"field-types", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			fr.inject(ctx, rule(`{"name":"numeric-expires-on","match":{"faces":["imds"],"path":"/metadata/identity/oauth2/token*"},"action":{"type":"field-types","variant":"numeric-expires-on"}}`))
			results := fr.probeEach(ctx, Namespace(ctx), imdsClients, 2*time.Minute, func(c string) []string {
				return []string{"--count=1", "--timeout=30s", "--resource=" + resourceFor("IDH-CHAOS-0009", c)}
			})
			outcomes := map[string]clientOutcome{}
			var problems []string
			for c, rs := range ByClient(results) {
				r := rs[0]
				switch {
				case !r.OK():
					outcomes[c] = clientOutcome{VerdictRecorded, "rejects a numeric expires_on: " + firstLine(r.Error)}
				// Judged from the expiry the client reports (its SDK's
				// belief), not the JWT's exp, which is right whatever the
				// client made of expires_on.
				case r.ExpiresOn.IsZero() || time.Until(r.ExpiresOn) < time.Hour:
					outcomes[c] = clientOutcome{report.Failed, fmt.Sprintf("accepted it but believes the token expires at %s (JWT exp %s)", r.ExpiresOn, r.TokenExp)}
					problems = append(problems, fmt.Sprintf("%s: believes the token expires at %s (JWT exp %s) from a numeric expires_on", c, r.ExpiresOn, r.TokenExp))
				default:
					outcomes[c] = clientOutcome{report.Passed, "accepts a numeric expires_on"}
				}
			}
			fr.finish(ctx, results, window{}, outcomes)
			Expect(problems).To(BeEmpty())
		})

	Chaos("IDH-CHAOS-0011", MUST, "a client whose 6-minute token reaches its refresh point during a 30 s IMDS outage MUST keep presenting the still-valid token to the protected resource, never an expired one, and MUST refresh it after the outage; MSAL Go fails those calls instead (a known finding)",
		[]string{"refuse", "outage", "expiry", "slow", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			if Stack.Images.Vault == "" {
				Skip("the protected resource is not deployed")
			}
			sys := client.Selector{ClientID: Stack.Nodes[fr.node].SystemAssigned.ClientID}
			if _, err := fr.fc.SetIdentityLifetime(ctx, sys, 6*time.Minute); err != nil {
				Fail(fmt.Sprintf("set the system identity's token lifetime on %s: %v", fr.node, err))
			}
			Expect(fr.fc.FlushTokens(ctx)).To(Succeed())
			DeferCleanup(func(ctx context.Context) {
				_, _ = fr.fc.SetIdentityLifetime(ctx, sys, 0)
				_ = fr.fc.FlushTokens(ctx)
			})
			clients := []string{probe.ClientAzidentityMI, probe.ClientAzidentityDefault, probe.ClientMSALMI}
			ns := Namespace(ctx)
			wait := fr.probeEachInBackground(ctx, ns, clients, 4*time.Minute, func(string) []string {
				return []string{"--duration=110s", "--interval=3s", "--timeout=60s", "--resource=" + vaultResource,
					"--vault-url=" + Stack.VaultURL(), "--secret=" + fixtures.SecretNode}
			})
			// Clients refresh a token once less than 5 minutes are left:
			// a minute after they got it. The outage covers that point.
			held := fr.waitForTokens(ctx, clients, 60*time.Second)
			fr.inject(ctx, rule(`{"name":"outage-at-refresh","match":{"faces":["imds"]},"action":{"type":"refuse"},"schedule":{"after":"45s","for":"30s"}}`))
			w := fr.windowOf("outage-at-refresh")
			results := wait()
			Expect(held).To(BeTrue(), "the probe pods did not all get a token within 60 s")
			outcomes := map[string]clientOutcome{}
			var problems []string
			for c, rs := range ByClient(results) {
				exps := map[time.Time]bool{}
				var bad []string
				expired, outside := false, false
				for _, r := range rs {
					exps[r.TokenExp] = true
					if r.TokenExpired {
						expired = true
					}
					if r.TokenExpired || !r.OK() || r.ResourceStatus != 200 {
						// A failed call is the outage's only if it started in it.
						outside = outside || r.Time.Before(w.from) || !r.Time.Before(w.to)
						bad = append(bad, fmt.Sprintf("%s attempt %d at %s: expired %v, status %s, resource %d: %s", c, r.Attempt,
							r.Time.Sub(fr.start).Round(100*time.Millisecond), r.TokenExpired, r.Status, r.ResourceStatus, lineWith(r.Error, "ManagedIdentityCredential")))
					}
				}
				refreshed := len(exps) >= 2
				note := fmt.Sprintf("%d tokens, %d failed calls", len(exps), len(bad))
				switch {
				case expired || outside || !refreshed:
					outcomes[c] = clientOutcome{report.Failed, note}
					problems = append(problems, bad...)
					if !refreshed {
						problems = append(problems, c+": never refreshed its 6-minute token")
					}
				case c == probe.ClientMSALMI && len(bad) > 0:
					// MSAL Go does not hand out a token with less than 5
					// minutes left: once it cannot refresh, calls fail
					// although the token is still valid.
					outcomes[c] = clientOutcome{VerdictFinding, note + ": failed while its still-valid token could not be refreshed"}
				case c == probe.ClientMSALMI:
					outcomes[c] = clientOutcome{report.Failed, note + ": unexpected pass"}
					problems = append(problems, c+": served every call through the outage: the known finding no longer reproduces; update the spec")
				default:
					outcomes[c] = clientOutcome{verdictOf(len(bad) == 0), note}
					problems = append(problems, bad...)
				}
			}
			fr.finish(ctx, results, w, outcomes)
			Expect(problems).To(BeEmpty())
		})
})

// transient runs the shape of spec id whose fault hits each IMDS client's
// first n token requests only: a rule per client (named prefix+client,
// action as JSON) on that client's own resource, then three calls 2 s
// apart with the given per-call timeout, judged by recordTransient.
func (fr *faultRun) transient(ctx SpecContext, id, prefix string, n int, action, timeout string) ([]probe.Result, map[string]clientOutcome, []string) {
	for _, c := range imdsClients {
		fr.inject(ctx, rule(fmt.Sprintf(`{"name":%q,"match":{"faces":["imds"],"resource":%q,"firstN":%d},"action":%s}`, prefix+c, resourceFor(id, c), n, action)))
	}
	results := fr.probeEach(ctx, Namespace(ctx), imdsClients, 2*time.Minute, func(c string) []string {
		return []string{"--count=3", "--interval=2s", "--timeout=" + timeout, "--resource=" + resourceFor(id, c)}
	})
	outcomes, problems := recordTransient(results)
	return results, outcomes, problems
}

// recordTransient judges clients against a fault that hits their first
// requests only: each must have a token by its last call, never an
// invalid one. Who failed a call on the way is recorded in the note.
func recordTransient(results []probe.Result) (map[string]clientOutcome, []string) {
	outcomes := map[string]clientOutcome{}
	var problems []string
	for c, rs := range ByClient(results) {
		var failed int
		var firstErr string
		for _, r := range rs {
			if !r.OK() {
				failed++
				if firstErr == "" {
					firstErr = lineWith(r.Error, "ManagedIdentityCredential")
				}
			}
		}
		last := rs[len(rs)-1]
		note := "every call got a token (retried inside the call)"
		if failed > 0 {
			note = fmt.Sprintf("%d call(s) failed first: %s", failed, firstErr)
		}
		outcomes[c] = clientOutcome{verdictOf(last.OK()), note}
		if !last.OK() {
			problems = append(problems, fmt.Sprintf("%s: no token by its last call: %s", c, firstLine(last.Error)))
		}
	}
	return outcomes, problems
}

var _ = Describe("chaos: determinism", Label("imds", "system-assigned"), Ordered, ContinueOnFailure, func() {
	BeforeAll(func(ctx SpecContext) { Setup(ctx) })

	Chaos("IDH-CHAOS-0015", MUST, "the node's fault engine MUST take the run's seed, and a probabilistic rule added again with the same seed MUST fault the same requests in the same order",
		[]string{"determinism", "status-500", "imds-mode"}, func(ctx SpecContext) {
			fr := begin(ctx)
			state, err := fr.fc.Chaos(ctx)
			Expect(err).NotTo(HaveOccurred(), "read the fault engine's state on %s", fr.node)
			Expect(state.Seed).To(Equal(Stack.Seed), "the seed of the fakeimds on %s is not the run's", fr.node)
			resource := resourceFor("IDH-CHAOS-0015", probe.ClientRaw)
			const js = `{"name":"seeded-500","match":{"faces":["imds"],"resource":"%s","probability":0.3},"action":{"type":"status","status":500}}`
			ns := Namespace(ctx)
			// Twice the same rule, each time from a fresh start: the
			// raw client's 40 sequential calls are 40 matching requests.
			var patterns [2]string
			var results []probe.Result
			for i := range patterns {
				fr.inject(ctx, rule(fmt.Sprintf(js, resource)))
				run := RunProbe(ctx, ns, Probe{Node: fr.node, Timeout: 2 * time.Minute, Args: []string{
					"--client=raw", "--count=40", "--interval=50ms", "--timeout=5s", "--resource=" + resource}})
				fr.remove(ctx, "seeded-500")
				var b strings.Builder
				for _, r := range run.Results {
					if r.OK() {
						b.WriteByte('.')
					} else {
						b.WriteByte('x')
					}
				}
				patterns[i] = b.String()
				results = append(results, run.Results...)
			}
			AddReportEntry("fault patterns (x: faulted) with seed "+fmt.Sprint(Stack.Seed), patterns[0]+"\n"+patterns[1])
			faulted := strings.Count(patterns[0], "x")
			ok := patterns[0] == patterns[1] && faulted > 0 && faulted < len(patterns[0])
			fr.finish(ctx, results, window{}, map[string]clientOutcome{probe.ClientRaw: {verdictOf(ok), fmt.Sprintf("%d of %d calls faulted, the same ones both times", faulted, len(patterns[0]))}})
			Expect(faulted).To(BeNumerically(">", 0), "a rule with probability 0.3 faulted none of 40 requests")
			Expect(faulted).To(BeNumerically("<", len(patterns[0])), "a rule with probability 0.3 faulted all 40 requests")
			Expect(patterns[1]).To(Equal(patterns[0]), "the same rule and seed faulted other requests the second time")
		})
})
