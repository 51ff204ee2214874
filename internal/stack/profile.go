package stack

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Profile is an identity implementation under test as a run deploys it:
// the declarations idharness ships for it (beside fakeimds and the
// default components), the modes it claims (spec labels: the specs worth
// running against it) and the upstream it expects (where its own token
// requests go).
type Profile struct {
	Name        string
	Description string
	// Modes are the identity modes the implementation claims (imds,
	// pod-identity, workload-identity, app-service: report.Modes): the
	// report's verdict is Conformant only when every MUST spec of a
	// claimed mode, and every MUST spec of no mode, ran and passed.
	// Empty claims every mode.
	Modes []string
	// Upstream is the metadata endpoint the implementation calls.
	Upstream string
	// SUTs name the declarations (sut.yaml) idharness ships that the
	// profile deploys (fixtures/sut/NAME, embedded in the binary, so that
	// no checkout is needed), in order: the implementation under test
	// first, then its companions (the reference workload identity
	// webhook). The run deploys them as --sut does; the profile's Modes
	// are the claims of the whole, and include the first one's.
	SUTs []string
}

// referenceWebhook is the shipped declaration of the reference workload
// identity webhook (sut.ReferenceWebhook), which every profile deploys.
const referenceWebhook = "reference-webhook"

var profiles = map[string]Profile{
	"imds": {Name: "imds", Description: "fakeimds on every node, no identity agent: pods talk to IMDS directly; the reference workload identity webhook (cmd/wiwebhook, declared in fixtures/sut/reference-webhook) mutates workload identity pods",
		Modes: []string{"imds", "workload-identity", "app-service"}, Upstream: "http://169.254.169.254", SUTs: []string{referenceWebhook}},
	"reference": {Name: "reference", Description: "idharness's reference pod identity node agent (cmd/nodeagent, declared in fixtures/sut/reference) with aad-pod-identity's CRDs, beside fakeimds and the reference workload identity webhook; pods in namespaces labelled idharness.io/pod-identity=true get pod identity, others are passed through",
		Modes: []string{"imds", "pod-identity", "workload-identity", "app-service"}, Upstream: "http://169.254.169.254", SUTs: []string{"reference", referenceWebhook}},
	"aad-pod-identity": {Name: "aad-pod-identity", Description: "aad-pod-identity's NMI v1.8.17 in managed mode, declared as data (its image built from the Go module proxy with the nodes' iptables), beside the reference workload identity webhook; it intercepts every pod, so only the pod identity specs run unless --label-filter says otherwise",
		Modes: []string{"pod-identity"}, Upstream: "http://169.254.169.254", SUTs: []string{"aad-pod-identity", referenceWebhook}},
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ProfileSUTs returns the names of the shipped declarations the named
// profile deploys (fixtures.ShippedSUT), the implementation under test
// first.
func ProfileSUTs(name string) ([]string, error) {
	p, err := profileNamed(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(p.SUTs), nil
}
