package scenario

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/podidentity"
)

// Setup is the fake metadata service's state when the run starts.
type Setup struct {
	// Seed drives every random choice of the fault rules, so that a run
	// can be replayed; it is recorded in the result. 0 lets the fake pick
	// one at start.
	Seed int64 `json:"seed,omitempty"`
	// Throttle sets IMDS's throttling limits; they are on by default, as
	// on a real VM. {enabled: false} turns them off.
	Throttle *chaos.Limits `json:"throttle,omitempty"`
	// SystemAssigned gives the host its system-assigned identity (the
	// default); false starts without one.
	SystemAssigned *bool `json:"systemAssigned,omitempty"`
	// Identities are user-assigned identities the scenario names, in the
	// fakeimds configuration's userAssigned format.
	Identities []config.Identity `json:"identities,omitempty"`
	// Unattached names identities of Identities that are not attached at
	// the start; an attach step attaches them later.
	Unattached []string `json:"unattached,omitempty"`
	// TokenLifetime is the default token lifetime (24h if unset).
	TokenLifetime duration.Duration `json:"tokenLifetime,omitempty"`
	// TokenRefreshBefore: the fake's token cache replaces a token with
	// less than this left (5m if unset, as IMDS does).
	TokenRefreshBefore duration.Duration `json:"tokenRefreshBefore,omitempty"`
	// PodIdentity, in a cluster run, creates pod identity objects in the
	// run's namespace before its pods start: for each binding an
	// AzureIdentity for a setup identity and an AzureIdentityBinding of it
	// to the pods labelled aadpodidbinding: SELECTOR. The groups set
	// podIdentity: true to run there.
	PodIdentity *PodIdentitySetup `json:"podIdentity,omitempty"`
	// WorkloadIdentity, in a cluster run, gives the groups that set
	// workloadIdentity: true a service account the stack's authority
	// trusts for one setup identity, and token files of a chosen
	// lifetime (workload_identity.go).
	WorkloadIdentity *WorkloadIdentitySetup `json:"workloadIdentity,omitempty"`
}

// PodIdentitySetup is the pod identity objects of a cluster run.
type PodIdentitySetup struct {
	// Bindings bind identities to pod labels.
	Bindings []PodIdentityBinding `json:"bindings"`
}

// PodIdentityBinding binds a setup identity to the pods whose
// aadpodidbinding label is Selector.
type PodIdentityBinding struct {
	// Identity names one of setup.identities; its AzureIdentity carries
	// its client ID and resource ID.
	Identity string `json:"identity"`
	// Selector is the binding's selector: the aadpodidbinding label value
	// of the pods it binds.
	Selector string `json:"selector"`
}

// identities maps the names a scenario may use to whether the identity is
// attached at the start.
type identities map[string]bool

func (s *Scenario) validateSetup() (identities, error) {
	st := &s.Setup
	if st.Throttle != nil {
		if err := validateLimits(*st.Throttle, "setup.throttle"); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"tokenLifetime", st.TokenLifetime.Duration}, {"tokenRefreshBefore", st.TokenRefreshBefore.Duration}} {
		if d.v < 0 {
			return nil, bad("setup."+d.name, "must not be negative")
		}
		if d.v > MaxTokenLifetime {
			return nil, bad("setup."+d.name, "%v: at most %v, the lifetime of Azure's managed identity tokens", d.v, MaxTokenLifetime)
		}
	}
	ids := identities{}
	if st.SystemAssigned == nil || *st.SystemAssigned {
		ids["system"] = true
	} else {
		ids["system"] = false
	}
	for i, id := range st.Identities {
		f := fmt.Sprintf("setup.identities[%d]", i)
		if id.Name == "" {
			return nil, bad(f+".name", "required: steps and clients refer to identities by name")
		}
		if id.Name == "system" {
			return nil, bad(f+".name", `"system" names the system-assigned identity; pick another name`)
		}
		if _, dup := ids[id.Name]; dup {
			return nil, bad(f+".name", "%q is used twice", id.Name)
		}
		if id.TokenLifetime.Duration > MaxTokenLifetime {
			return nil, bad(f+".tokenLifetime", "%v: at most %v, the lifetime of Azure's managed identity tokens", id.TokenLifetime.Duration, MaxTokenLifetime)
		}
		ids[id.Name] = true
	}
	for i, n := range st.Unattached {
		f := fmt.Sprintf("setup.unattached[%d]", i)
		if _, ok := ids[n]; !ok || n == "system" {
			return nil, bad(f, "%q is not one of setup.identities (to start without the system-assigned identity, set systemAssigned: false)", n)
		}
		ids[n] = false
	}
	if err := st.validatePodIdentity(ids); err != nil {
		return nil, err
	}
	if wi := st.WorkloadIdentity; wi != nil {
		if wi.Identity == "" || wi.Identity == "system" {
			return nil, bad("setup.workloadIdentity.identity", "required: one of setup.identities, the identity the run's service account is federated to")
		}
		if _, ok := ids[wi.Identity]; !ok {
			return nil, bad("setup.workloadIdentity.identity", "%q is not one of setup.identities", wi.Identity)
		}
		if st.PodIdentity != nil {
			return nil, bad("setup.workloadIdentity", "a run's pods use workload identity or pod identity, not both: play them in scenarios of their own")
		}
	}
	// The fakeimds configuration checks GUIDs, resource IDs and duplicates.
	cfg, err := s.ServerConfig()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			return nil, bad(configFieldToScenario(fe.Field, st), "%s", fe.Problem)
		}
		return nil, bad("setup", "%v", err)
	}
	return ids, nil
}

// configFieldToScenario maps a fakeimds configuration field back to the
// scenario field it came from.
func configFieldToScenario(field string, st *Setup) string {
	rest, ok := strings.CutPrefix(field, "userAssigned[")
	if !ok {
		return "setup"
	}
	var n int
	var tail string
	if _, err := fmt.Sscanf(rest, "%d]", &n); err != nil {
		return "setup.identities"
	}
	if i := strings.Index(rest, "]"); i >= 0 {
		tail = rest[i+1:]
	}
	// userAssigned lists the attached identities of setup.identities in order.
	k := -1
	for i, id := range st.Identities {
		if contains(st.Unattached, id.Name) {
			continue
		}
		k++
		if k == n {
			return fmt.Sprintf("setup.identities[%d]%s", i, tail)
		}
	}
	return "setup.identities"
}

// validatePodIdentity checks setup.podIdentity: at least one binding,
// each of a setup identity to a selector that is a label value, none
// twice.
func (st *Setup) validatePodIdentity(ids identities) error {
	pi := st.PodIdentity
	if pi == nil {
		return nil
	}
	if len(pi.Bindings) == 0 {
		return bad("setup.podIdentity.bindings", "required: at least one binding, e.g. {identity: id-a, selector: web}")
	}
	seen := map[string]bool{}
	for i, b := range pi.Bindings {
		f := fmt.Sprintf("setup.podIdentity.bindings[%d]", i)
		if b.Identity == "" || b.Identity == "system" {
			return bad(f+".identity", "required: one of setup.identities (a pod identity agent serves user-assigned identities only)")
		}
		if _, ok := ids[b.Identity]; !ok {
			return bad(f+".identity", "%q is not one of setup.identities", b.Identity)
		}
		if b.Selector == "" {
			return bad(f+".selector", "required: the aadpodidbinding label value of the pods to bind, e.g. web")
		}
		if errs := validation.IsValidLabelValue(b.Selector); len(errs) > 0 {
			return bad(f+".selector", "%q is not a label value: %s", b.Selector, strings.Join(errs, "; "))
		}
		// The binding's object name is IDENTITY-SELECTOR: a name of its own.
		name := podidentity.BindingName(b.Identity, b.Selector)
		if errs := validation.IsDNS1123Subdomain(strings.ToLower(name)); len(errs) > 0 || name != strings.ToLower(name) {
			return bad(f+".selector", "the binding would be called %q, which is not an object name: use lower-case letters, digits, - and . in the identity's name and the selector", name)
		}
		if seen[name] {
			return bad(f, "binds %s to %s a second time", b.Identity, b.Selector)
		}
		seen[name] = true
	}
	return nil
}
