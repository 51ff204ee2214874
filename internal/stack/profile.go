package stack

import (
	"fmt"
	"sort"
	"strings"
)

// Profile is an identity implementation under test as a run deploys it:
// the components (images and manifests) beyond fakeimds, the modes it
// claims (spec labels: the specs worth running against it) and the
// upstream it expects (where its own token requests go).
type Profile struct {
	Name        string
	Description string
	// Components are deployed in addition to the default ones.
	Components []string
	// Without names default components the profile replaces, e.g. the
	// reference workload identity webhook when a vendor brings its own.
	Without []string
	// Modes are the identity modes the implementation claims (imds,
	// pod-identity, workload-identity, app-service: report.Modes): the
	// report's verdict is Conformant only when every MUST spec of a
	// claimed mode, and every MUST spec of no mode, ran and passed.
	// Empty claims every mode.
	Modes []string
	// Upstream is the metadata endpoint the implementation calls.
	Upstream string
	// SUT names the declaration (sut.yaml) idharness ships for the
	// profile's implementation (fixtures/sut/NAME, embedded in the
	// binary, so that no checkout is needed): the run deploys it as --sut
	// does, beside the profile's components. The profile's Modes are the
	// claims of the whole, and include the declaration's own.
	SUT string
}

var profiles = map[string]Profile{
	"imds": {Name: "imds", Description: "fakeimds on every node, no identity agent: pods talk to IMDS directly",
		Modes: []string{"imds", "workload-identity", "app-service"}, Upstream: "http://169.254.169.254"},
	"reference": {Name: "reference", Description: "idharness's reference pod identity node agent (cmd/nodeagent, declared in fixtures/sut/reference) with aad-pod-identity's CRDs, beside fakeimds and the reference workload identity webhook; pods in namespaces labelled idharness.io/pod-identity=true get pod identity, others are passed through",
		Modes: []string{"imds", "pod-identity", "workload-identity", "app-service"}, Upstream: "http://169.254.169.254", SUT: "reference"},
	"aad-pod-identity": {Name: "aad-pod-identity", Description: "aad-pod-identity's NMI v1.8.17 in managed mode, declared as data (its image built from the Go module proxy with the nodes' iptables); it intercepts every pod, so only the pod identity specs run unless --label-filter says otherwise",
		Modes: []string{"pod-identity"}, Upstream: "http://169.254.169.254", SUT: "aad-pod-identity"},
}

// Profiles returns the known profiles, by name.
func Profiles() []Profile {
	out := make([]Profile, 0, len(profiles))
	for _, p := range profiles {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ProfileModes returns the modes the named profile claims ("" is imds).
func ProfileModes(name string) ([]string, error) {
	p, err := profileNamed(name)
	if err != nil {
		return nil, err
	}
	return p.Modes, nil
}

// profileNamed returns the named profile ("" is imds), or an error
// listing the known ones.
func profileNamed(name string) (Profile, error) {
	if name == "" {
		name = "imds"
	}
	p, ok := profiles[name]
	if !ok {
		var known []string
		for _, q := range Profiles() {
			known = append(known, q.Name)
		}
		return Profile{}, fmt.Errorf("unknown profile %q: use one of %s", name, strings.Join(known, ", "))
	}
	return p, nil
}

// ProfileComponents returns the components a run of the named profile
// deploys: the default ones and the profile's own. The empty name is
// "imds" and gives nil (the defaults), as before profiles existed.
func ProfileComponents(name string) ([]string, error) {
	p, err := profileNamed(name)
	if err != nil {
		return nil, err
	}
	if len(p.Components) == 0 && len(p.Without) == 0 {
		return nil, nil
	}
	out := []string{}
	for _, c := range Components() {
		if c.Default && !contains(p.Without, c.Name) {
			out = append(out, c.Name)
		}
	}
	for _, c := range p.Components {
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// SUTComponents returns the components a run of an implementation
// declared in a file (--sut) deploys beside it, given the modes it
// claims: the default ones (nil), less the reference workload identity
// webhook when it claims workload-identity. It brings its own webhook;
// ours beside it would mutate the same pods, and the specs would judge
// both. The authority, fakeimds's stand-in for Entra ID, stays.
func SUTComponents(claims []string) []string {
	if !contains(claims, "workload-identity") {
		return nil
	}
	out := []string{}
	for _, c := range Components() {
		if c.Default && c.Name != WorkloadIdentityComponent {
			out = append(out, c.Name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ProfileSUT returns the name of the shipped declaration of the named
// profile (fixtures.ShippedSUT), or "" when it is made of components only.
func ProfileSUT(name string) (string, error) {
	p, err := profileNamed(name)
	if err != nil {
		return "", err
	}
	return p.SUT, nil
}
