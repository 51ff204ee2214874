package run

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/sut"
)

// TestProgramImages: an implementation's images of idharness's programs
// take the references the images phase gave those programs (a digest
// after a push) and their IDs, named as in the declaration.
func TestProgramImages(t *testing.T) {
	s, err := sut.LoadShipped("reference", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		imgs fixtures.Images
		ids  map[string]string
		want []sut.Loaded
	}{
		{name: "loaded", imgs: fixtures.Images{Extra: map[string]string{"nodeagent": "idharness.local/nodeagent:dev"}},
			ids:  map[string]string{"idharness.local/nodeagent:dev": "sha256:1"},
			want: []sut.Loaded{{Name: "nodeagent", Ref: "idharness.local/nodeagent:dev", ID: "sha256:1"}}},
		{name: "pushed", imgs: fixtures.Images{Extra: map[string]string{"nodeagent": "localhost:5001/idharness/nodeagent@sha256:2"}},
			ids:  map[string]string{"localhost:5001/idharness/nodeagent@sha256:2": "sha256:3"},
			want: []sut.Loaded{{Name: "nodeagent", Ref: "localhost:5001/idharness/nodeagent@sha256:2", ID: "sha256:3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := programImages(s, tc.imgs, tc.ids); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, program := range []string{"nodeagent", "wiwebhook"} {
		if _, ok := knownPrograms()[program]; !ok {
			t.Errorf("knownPrograms() %v lacks %s, which a shipped declaration names", knownPrograms(), program)
		}
	}
}

// TestRunRefusesUnknownProgram: a declaration naming a program idharness
// does not have fails before any phase, listing those it has.
func TestRunRefusesUnknownProgram(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "manifests"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: \"{{ .Namespace }}\"}\nspec: {template: {spec: {containers: [{name: a, image: \"{{ .Images.agent }}\"}]}}}\n"
	decl := "apiVersion: idharness.io/v1alpha1\nkind: Implementation\nname: vendor\nclaims: [pod-identity]\nintercepts: opted-in\nimages:\n  - {name: agent, program: nodeagnet}\nmanifests: manifests\nreadiness: {daemonSets: [agent]}\n"
	for name, body := range map[string]string{"manifests/agent.yaml": manifest, "sut.yaml": decl} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := sut.Load(filepath.Join(dir, "sut.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{SUTs: []*sut.SUT{s}, ClusterName: "never-made", CacheDir: dir})
	if err == nil || !strings.Contains(err.Error(), `image agent: program "nodeagnet" is not one of idharness's programs: use fakeimds, nodeagent, probe, vault, wiwebhook`) {
		t.Fatalf("error %v", err)
	}
	// Two implementations of one name would label their objects alike.
	wh, err := sut.LoadShipped(sut.ReferenceWebhook, dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{SUTs: []*sut.SUT{wh, wh}, ClusterName: "never-made", CacheDir: dir})
	if err == nil || !strings.Contains(err.Error(), "implementation reference-webhook") || !strings.Contains(err.Error(), "rename one") {
		t.Fatalf("two implementations of one name: error %v", err)
	}
}
