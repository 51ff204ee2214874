package incluster

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// suiteSources are the packages whose Kubernetes calls the runner makes:
// the suites, their framework, and what they play and bind through.
var suiteSources = []string{"suites/framework", "suites/conformance", "suites/chaos", "internal/scenario", "internal/probepod", "internal/podidentity"}

// hostOnly are calls only the specs that need the machine behind the
// nodes make: the runner leaves those specs out (framework.NoHost).
var hostOnly = map[string]string{
	"services get": "step_partition.go reads the API server's Service to cut a node from it",
	// scenario.Scenario.NeedsHost leaves these out in the cluster too:
	// they would need cluster-wide webhook configurations and Secrets.
	"mutatingwebhookconfigurations create": "step_wi_pod.go: a slow webhook or a reinvocation (wiPod's needsHost)",
	"mutatingwebhookconfigurations delete": "step_wi_pod.go: a slow webhook or a reinvocation (wiPod's needsHost)",
	"mutatingwebhookconfigurations get":    "step_wi_pod.go: a slow webhook or a reinvocation (wiPod's needsHost)",
	"secrets create":                       "workload_identity.go: tokenFile: secret (NeedsHost)",
	"secrets update":                       "workload_identity.go: tokenFile: secret (NeedsHost)",
	"serviceaccounts createtoken":          "workload_identity.go: tokenFile: secret (NeedsHost)",
}

var (
	typedCall   = regexp.MustCompile(`(?:CoreV1|AppsV1|AdmissionregistrationV1|RbacV1|BatchV1)\(\)\.([A-Za-z]+)\([^)]*\)\.([A-Za-z]+)\(`)
	dynamicCall = regexp.MustCompile(`Resource\((?:[a-z]+\.)?([A-Za-z]+)GVR\)\.(?:Namespace\([^)]*\)\.)?([A-Za-z]+)\(`)
)

// resourceOf maps a client method (Pods, MutatingWebhookConfigurations)
// or a GVR variable (AzureIdentityBinding) to its resource.
func resourceOf(method string) string {
	switch method {
	case "AzureIdentity":
		return "azureidentities"
	case "AzureIdentityBinding", "AzurePodIdentityException":
		return strings.ToLower(method) + "s"
	}
	return strings.ToLower(method)
}

// requests maps a call's verb method to the resource and verb it needs.
func request(resource, method string) (string, string) {
	switch method {
	case "GetLogs":
		return resource + "/log", "get"
	case "GetScale":
		return resource + "/scale", "get"
	case "UpdateScale":
		return resource + "/scale", "update"
	}
	return resource, strings.ToLower(method)
}

// suiteRequests returns "resource verb" of every call in the suites'
// sources, with where it is.
func suiteRequests(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..")
	out := map[string]string{}
	for _, dir := range suiteSources {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s (%v): update suiteSources", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, re := range []*regexp.Regexp{typedCall, dynamicCall} {
				for _, m := range re.FindAllStringSubmatch(string(b), -1) {
					res, verb := request(resourceOf(m[1]), m[2])
					out[res+" "+verb] = filepath.Base(f)
				}
			}
		}
	}
	return out
}

// allows reports whether rules grant verb on resource (by any name).
func allows(rules []rbacv1.PolicyRule, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.Resources, resource) && (slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}

// missing lists the suites' requests rules do not grant.
func missing(reqs map[string]string, rules []rbacv1.PolicyRule) []string {
	var out []string
	for rv, where := range reqs {
		if _, ok := hostOnly[rv]; ok {
			continue
		}
		res, verb, _ := strings.Cut(rv, " ")
		if !allows(rules, res, verb) {
			out = append(out, rv+" ("+where+")")
		}
	}
	slices.Sort(out)
	return out
}

// TestRulesCoverTheSuites: every Kubernetes call in the suites' sources
// is granted by the runner's roles, and the check fails when one rule
// goes. (The e2e run is the proof; this keeps a new call from reaching
// it unnoticed.)
func TestRulesCoverTheSuites(t *testing.T) {
	reqs := suiteRequests(t)
	if len(reqs) < 10 {
		t.Fatalf("found %d calls in the suites' sources: the patterns no longer match the code", len(reqs))
	}
	rules := append(ClusterRules("idharness-system"), NamespaceRules()...)
	if m := missing(reqs, rules); len(m) > 0 {
		t.Errorf("calls the runner's roles do not grant: %s\nadd them to ClusterRules or NamespaceRules, with the code that needs them", strings.Join(m, ", "))
	}
	// Without the rule for the probes' logs, the check fails.
	var less []rbacv1.PolicyRule
	for _, r := range rules {
		if !slices.Contains(r.Resources, "pods/log") {
			less = append(less, r)
		}
	}
	if m := missing(reqs, less); len(m) == 0 || !strings.HasPrefix(m[0], "pods/log get") {
		t.Errorf("without pods/log: missing %v, want pods/log get", m)
	}
}

// TestRulesLeastPrivilege: the runner gets no wildcard, reads no secret
// but the control token, and writes no RBAC.
func TestRulesLeastPrivilege(t *testing.T) {
	for _, r := range append(ClusterRules("ns"), NamespaceRules()...) {
		for _, s := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
			if slices.Contains(s, "*") {
				t.Errorf("rule %+v: a wildcard", r)
			}
		}
		if slices.Contains(r.Resources, "secrets") && len(r.ResourceNames) != 1 {
			t.Errorf("rule %+v: secrets beyond the control token", r)
		}
		if slices.Contains(r.APIGroups, rbacv1.GroupName) {
			t.Errorf("rule %+v: RBAC objects", r)
		}
	}
	for _, r := range ClusterRules("ns") {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "pods/proxy") {
			t.Errorf("cluster rule %+v: only the stack's namespace may grant it", r)
		}
	}
}
