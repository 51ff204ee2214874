package scenario

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/vault"
	"github.com/idharness/idharness/pkg/api/podidentity"
)

// Workload is the clients that ask for tokens during the run.
type Workload struct {
	// Duration is how long the clients run; the run ends then.
	Duration duration.Duration `json:"duration"`
	// Clients are groups of identical clients.
	Clients []ClientGroup `json:"clients"`
}

// ClientGroup is Count clients of one kind asking for a token every Every.
// Each is a client of the registry (idharness clients list): a Go client
// runs in this process, any other as a program of its own.
type ClientGroup struct {
	// Name names the group; its clients are NAME-1 … NAME-COUNT.
	Name string `json:"name"`
	// Client names the registry's client, e.g. azidentity-mi or
	// py-azidentity-mi. Exactly one of Client and Exec is set.
	Client string `json:"client,omitempty"`
	// Exec runs the user's own workload instead: any command, pointed at
	// the fake, judged from the requests it sends and the lines it prints.
	Exec *Exec `json:"exec,omitempty"`
	// Count is how many clients (default 1).
	Count int `json:"count,omitempty"`
	// Every is the time between the starts of one client's attempts; a
	// client whose attempt takes longer starts the next one at once.
	Every duration.Duration `json:"every"`
	// Start delays the group's first attempts from the start of the run.
	Start duration.Duration `json:"start,omitempty"`
	// Spread starts the clients evenly over this long instead of all at
	// once.
	Spread duration.Duration `json:"spread,omitempty"`
	// Identity names the user-assigned identity the clients ask for;
	// empty asks for the host's default (the system-assigned one).
	Identity string `json:"identity,omitempty"`
	// SelectBy is how clients name their identity: clientId (default),
	// objectId or resourceId.
	SelectBy string `json:"selectBy,omitempty"`
	// Resource is the audience asked for (default
	// https://management.azure.com). Each client asks for its own
	// sub-resource of it (RESOURCE/idharness/RUN/CLIENT), because the Go
	// SDKs cache tokens process-wide by identity and resource: distinct
	// resources make each client behave like a separate process.
	Resource string `json:"resource,omitempty"`
	// Timeout bounds each attempt as an application's context would;
	// zero leaves only the clients' own timeouts.
	Timeout duration.Duration `json:"timeout,omitempty"`
	// Parallel makes each of a client's attempts Parallel GetToken calls
	// at once on the same client (default 1), as an application's threads
	// do on one credential: with a cold cache, a fan-out. Every call is an
	// attempt of its own (Attempt.Call numbers them); the next fan-out
	// starts every after this one's start, or when its last call ends.
	Parallel int `json:"parallel,omitempty"`
	// UseToken names the protected resource where each token a call gets
	// is used, as an application would use it: "vault" reads a secret
	// with it (Attempt.ResourceStatus records the answer). Locally the
	// run starts a vault of its own on loopback that trusts the fake's
	// signing key; in a cluster the stack's vault reads node-secret.
	UseToken string `json:"useToken,omitempty"`
	// PodIdentity runs the group's pods in a namespace opted in to pod
	// identity (in a cluster only; the node's pod identity agent then
	// answers their calls); setup.podIdentity binds identities there.
	PodIdentity bool `json:"podIdentity,omitempty"`
	// Labels are added to the group's pods (in a cluster only), e.g.
	// {aadpodidbinding: chaos-bound} for a binding's selector.
	Labels map[string]string `json:"labels,omitempty"`
	// WorkloadIdentity runs the group's clients in workload identity
	// mode (in a cluster only): pods of setup.workloadIdentity's service
	// account, mutated by the stack's webhook, exchanging their service
	// account token at the stack's authority.
	WorkloadIdentity bool `json:"workloadIdentity,omitempty"`
}

// UseTokenVault is ClientGroup.UseToken's one value: read a secret from
// the protected resource with each token.
const UseTokenVault = "vault"

// MaxParallel bounds a group's parallel: enough for any fan-out an
// application makes on one credential.
const MaxParallel = 64

// MaxCalls bounds the calls of a run that can be in flight at once, the
// sum over the groups of clients × parallel: each is a goroutine (or, in a
// cluster, a call of a pod) against one fake.
const MaxCalls = 1000

// Calls returns how many calls each attempt of the group makes at once.
func (g ClientGroup) Calls() int {
	if g.Parallel == 0 {
		return 1
	}
	return g.Parallel
}

// baseResource returns the audience the group's clients ask tokens for,
// before each client's own suffix: the vault's with useToken: vault.
func (g ClientGroup) baseResource() string {
	switch {
	case g.Resource != "":
		return g.Resource
	case g.UseToken == UseTokenVault:
		return vault.DefaultAudience
	}
	return DefaultResource
}

// Exec is a workload the user brings: a command that gets its tokens the
// way it does in production, with its environment pointed at the fake.
// The harness does not drive its calls; it attributes the requests the
// fake sees to it (it reaches the fake from an address of its own) and
// turns the lines it prints into attempts.
type Exec struct {
	// Command is the program and its arguments, run in the scenario
	// file's folder.
	Command []string `json:"command"`
	// IMDSEnv are the variables set to the fake's URL, through which the
	// workload's SDK can be pointed at another IMDS (see docs/clients.md):
	// AZURE_POD_IDENTITY_AUTHORITY_HOST, HTTP_PROXY, … IDHARNESS_IMDS_URL
	// is always set.
	IMDSEnv []string `json:"imdsEnv,omitempty"`
	// Success is a regular expression: each line of the workload's output
	// (stdout or stderr) that matches is a successful attempt at the time
	// it was printed.
	Success string `json:"success"`
	// Failure, when set, is a regular expression for lines that are failed
	// attempts; the line is the attempt's error.
	Failure string `json:"failure,omitempty"`
}

// selects returns how the group's clients name their identity.
func (g ClientGroup) selects() clients.IdentityKind {
	if g.Identity == "" {
		return clients.System
	}
	switch g.SelectBy {
	case "objectId":
		return clients.ByObjectID
	case "resourceId":
		return clients.ByResourceID
	}
	return clients.ByClientID
}

// Clients returns the number of clients of the group.
func (g ClientGroup) Clients() int {
	if g.Count == 0 {
		return 1
	}
	return g.Count
}

// DefaultResource is the resource clients ask for when a group names none.
const DefaultResource = "https://management.azure.com"

func (s *Scenario) validateWorkload(ids identities) error {
	w := &s.Workload
	if w.Duration.Duration <= 0 {
		return bad("workload.duration", "required: how long the clients run, e.g. 90s")
	}
	if w.Duration.Duration > MaxDuration {
		return bad("workload.duration", "at most %v; shorten the incident to its essence", MaxDuration)
	}
	if len(w.Clients) == 0 {
		return bad("workload.clients", "required: at least one client group")
	}
	total, calls := 0, 0
	names := map[string]bool{}
	for i, g := range w.Clients {
		f := fmt.Sprintf("workload.clients[%d]", i)
		if !idPattern.MatchString(g.Name) {
			return bad(f+".name", "want lower-case words joined by dashes, got %q", g.Name)
		}
		if names[g.Name] {
			return bad(f+".name", "%q is used twice", g.Name)
		}
		names[g.Name] = true
		if (g.Client == "") == (g.Exec == nil) {
			return bad(f, "set exactly one of client (a client of idharness clients list) and exec (your own command)")
		}
		var spec clients.Spec
		if g.Exec != nil {
			if err := g.Exec.validate(); err != nil {
				return bad(f+".exec", "%v", err)
			}
			if g.Every.Duration != 0 || g.Timeout.Duration != 0 || g.Resource != "" {
				return bad(f, "every, timeout and resource are the workload's own business with exec: leave them out")
			}
		} else {
			reg, err := registry()
			if err != nil {
				return err
			}
			if spec, err = reg.Lookup(g.Client); err != nil {
				return bad(f+".client", "%v", err)
			}
			if ok, why := spec.Supports(g.mode(), g.selects()); !ok {
				return bad(f+".client", "%s: %s; pick another client (idharness clients list) or selectBy", g.Client, why)
			}
		}
		if g.Count < 0 {
			return bad(f+".count", "must not be negative")
		}
		if g.Count > MaxClients {
			return bad(f+".count", "%d clients; at most %d in a local run, each a real SDK client in this process: lower count", g.Count, MaxClients)
		}
		// total and n are at most MaxClients each: the sum cannot overflow.
		if n := g.Clients(); total+n > MaxClients {
			field := f
			if g.Count != 0 {
				field += ".count"
			}
			return bad(field, "brings the workload to %d clients; at most %d in a local run, each a real SDK client in this process: lower the groups' counts", total+n, MaxClients)
		}
		total += g.Clients()
		if g.Exec == nil && g.Every.Duration < 100*time.Millisecond {
			return bad(f+".every", "want at least 100ms between one client's attempts, e.g. 5s")
		}
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"every", g.Every.Duration}, {"start", g.Start.Duration}, {"spread", g.Spread.Duration}, {"timeout", g.Timeout.Duration}} {
			if d.v < 0 {
				return bad(f+"."+d.name, "must not be negative")
			}
			// Bounded each, start+spread and spread×clients cannot overflow.
			if d.v > MaxDuration {
				return bad(f+"."+d.name, "%v: at most %v, the longest run", d.v, MaxDuration)
			}
		}
		if g.Start.Duration+g.Spread.Duration >= w.Duration.Duration {
			return bad(f+".start", "the group would start after the workload ends (%v)", w.Duration.Duration)
		}
		if g.Identity != "" {
			if g.Identity == "system" {
				return bad(f+".identity", `leave identity empty for the system-assigned identity`)
			}
			if _, ok := ids[g.Identity]; !ok {
				return bad(f+".identity", "%q is not one of setup.identities", g.Identity)
			}
			if spec.New != nil && spec.IdentityFromEnv {
				// A Go client that takes its identity only from the
				// process-wide AZURE_CLIENT_ID cannot have one of its own
				// in this process.
				return bad(f+".identity", "%s takes a user-assigned identity only from AZURE_CLIENT_ID, which is process-wide in a local run; use azidentity-mi, or a client program (py-azidentity-default, …), which has a process of its own", g.Client)
			}
		}
		switch g.SelectBy {
		case "", "clientId", "objectId", "resourceId":
		default:
			return bad(f+".selectBy", "want clientId, objectId or resourceId, got %q", g.SelectBy)
		}
		if g.SelectBy != "" && g.Identity == "" {
			return bad(f+".selectBy", "only with identity")
		}
		if g.Resource != "" {
			u, err := url.Parse(g.Resource)
			if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				return bad(f+".resource", "want a resource URI such as https://vault.azure.net, got %q", g.Resource)
			}
		}
		if err := g.validateOptions(f); err != nil {
			return err
		}
		// Each term is at most MaxClients × MaxParallel: no overflow.
		calls += g.Clients() * g.Calls()
		if calls > MaxCalls {
			return bad(f, "brings the workload to %d calls at once (clients × parallel, over every group); at most %d: lower count or parallel", calls, MaxCalls)
		}
	}
	podID := 0
	for _, g := range w.Clients {
		if g.PodIdentity {
			podID++
		}
	}
	if podID > 0 && podID < len(w.Clients) {
		for i, g := range w.Clients {
			if !g.PodIdentity {
				return bad(fmt.Sprintf("workload.clients[%d]", i), "the run's pods share one namespace, opted in to pod identity when any group sets podIdentity: set podIdentity: true on every group (a pod identity agent then answers them all), or run the other groups in a scenario of their own")
			}
		}
	}
	if s.Setup.PodIdentity != nil && podID == 0 {
		return bad("setup.podIdentity", "no group runs in the pod identity namespace, so the bindings would bind nothing: set podIdentity: true on the groups (with labels: {aadpodidbinding: SELECTOR} on the bound ones)")
	}
	return nil
}

// harnessLabels are the probe pods' own labels, which a group's labels
// must not replace: the runner finds its pods by them.
var harnessLabels = []string{"app.kubernetes.io/name", "app.kubernetes.io/part-of", scenarioLabel}

// validateOptions checks a group's parallel, useToken, podIdentity and
// labels; f is the group's field path.
func (g ClientGroup) validateOptions(f string) error {
	if g.Parallel < 0 || g.Parallel > MaxParallel {
		return bad(f+".parallel", "%d: want 1 to %d calls at once per client (default 1)", g.Parallel, MaxParallel)
	}
	if g.Parallel > 0 && g.Exec != nil {
		return bad(f+".parallel", "your own command makes its calls itself: leave parallel out with exec")
	}
	switch g.UseToken {
	case "":
	case UseTokenVault:
		if g.Exec != nil {
			return bad(f+".useToken", "your own command uses its tokens itself: leave useToken out with exec")
		}
		if g.Resource != "" && strings.TrimRight(g.Resource, "/") != vault.DefaultAudience {
			return bad(f+".resource", "%q: with useToken: vault the clients ask for the vault's audience, %s; leave resource out", g.Resource, vault.DefaultAudience)
		}
	default:
		return bad(f+".useToken", "want %s (read a secret at the protected resource with each token), got %q", UseTokenVault, g.UseToken)
	}
	for _, k := range sortedKeys(g.Labels) {
		lf := f + ".labels." + k
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return bad(lf, "%q is not a label name: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(g.Labels[k]); len(errs) > 0 {
			return bad(lf, "%q is not a label value: %s", g.Labels[k], strings.Join(errs, "; "))
		}
		if slices.Contains(harnessLabels, k) {
			return bad(lf, "%s is the probe pods' own label; pick another", k)
		}
		if k == podidentity.BindingLabel && !g.PodIdentity {
			return bad(lf, "a pod identity agent reads %s only in a namespace opted in to pod identity: set podIdentity: true on the group", k)
		}
	}
	if (g.PodIdentity || len(g.Labels) > 0) && g.Exec != nil {
		return bad(f, "podIdentity and labels are for pods, and your own command runs locally: leave them out with exec")
	}
	return nil
}

// checkLocalWorkload returns an error, with the file's line, naming the
// first field of the workload or setup a local run cannot honour: pods'
// labels and pod identity need a cluster and its node agent.
func (s *Scenario) checkLocalWorkload() error {
	if s.Setup.WorkloadIdentity != nil {
		return s.fieldError("setup.workloadIdentity", "workload identity needs the stack's webhook and authority in a cluster, and a local run has neither: run this scenario in a cluster (idharness scenario run --cluster NAME)")
	}
	if s.Setup.PodIdentity != nil {
		return s.fieldError("setup.podIdentity", "pod identity objects are read by a node agent in a cluster, and a local run has none: run this scenario in a cluster (idharness scenario run --cluster NAME)")
	}
	for i, g := range s.Workload.Clients {
		f := fmt.Sprintf("workload.clients[%d]", i)
		if g.PodIdentity {
			return s.fieldError(f+".podIdentity", "a local run has no pod identity agent to answer the group's calls: run this scenario in a cluster (idharness scenario run --cluster NAME)")
		}
		if len(g.Labels) > 0 {
			return s.fieldError(f+".labels", "labels are put on the group's pods, and a local run has none: run this scenario in a cluster (idharness scenario run --cluster NAME)")
		}
	}
	return nil
}

// checkClusterWorkload returns an error, with the file's line, naming the
// first option of a group that a cluster run cannot honour.
func (s *Scenario) checkClusterWorkload() error {
	for i, g := range s.Workload.Clients {
		if g.UseToken != UseTokenVault {
			continue
		}
		f := fmt.Sprintf("workload.clients[%d]", i)
		// The stack's vault lets the nodes' system-assigned identities
		// read node-secret, and the stack's own id-a app-secret; the
		// scenario's identities are its own, unknown to the vault.
		if g.Identity != "" {
			return s.fieldError(f+".identity", "useToken: vault in a cluster reads %s, which only the node's system-assigned identity may read; the scenario's identity %s is unknown to the stack's vault: leave identity out, or run locally, where the run's own vault lets each group's identity read its secret", fixtures.SecretNode, g.Identity)
		}
		if s.Setup.SystemAssigned != nil && !*s.Setup.SystemAssigned {
			return s.fieldError(f+".useToken", "useToken: vault in a cluster reads %s with the node's system-assigned identity, which setup.systemAssigned: false removes: run locally, or keep the system-assigned identity", fixtures.SecretNode)
		}
	}
	return nil
}
