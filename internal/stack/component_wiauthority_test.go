package stack

import (
	"encoding/pem"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fixtures"
)

func wiParams() fixtures.Params {
	return fixtures.Params{Namespace: fixtures.DefaultNamespace, Nodes: []string{"n1"}, Identities: fixtures.DefaultIdentities(""),
		Images: fixtures.Images{FakeIMDS: "idharness.local/fakeimds:dev", Extra: map[string]string{WIWebhookName: "idharness.local/wiwebhook:dev"}}}
}

// TestWIObjects: the authority component renders the authority alone
// (the webhook is a declaration, fixtures/sut/reference-webhook), with a
// valid fakeimds configuration of the authority face only.
func TestWIObjects(t *testing.T) {
	objs, err := wiObjects(wiParams())
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]*unstructured.Unstructured{}
	for _, o := range objs {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
		if o.GetLabels()["app.kubernetes.io/part-of"] != "idharness" {
			t.Errorf("%s %s is not labelled as idharness's", o.GetKind(), o.GetName())
		}
		if !strings.HasPrefix(o.GetName(), WIAuthorityName) {
			t.Errorf("%s %s: the authority component renders only the authority's objects (wi-authority*)", o.GetKind(), o.GetName())
		}
	}
	for kind, n := range map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "Secret": 1, "ConfigMap": 2} {
		if len(byKind[kind]) != n {
			t.Errorf("%d %s objects, want %d", len(byKind[kind]), kind, n)
		}
	}
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the CA clients trust is in its ConfigMap", func(t *testing.T) {
			for _, cm := range byKind["ConfigMap"] {
				if cm.GetName() != WIAuthorityCAConfigMap {
					continue
				}
				ca, _, _ := unstructured.NestedString(cm.Object, "data", "ca.crt")
				if blk, _ := pem.Decode([]byte(ca)); blk == nil || blk.Type != "CERTIFICATE" {
					t.Errorf("%s holds no PEM certificate: %q", WIAuthorityCAConfigMap, ca)
				}
				return
			}
			t.Errorf("no ConfigMap %s", WIAuthorityCAConfigMap)
		}},
		{"the init container runs the webhook program's issuer-keys", func(t *testing.T) {
			ics, _, _ := unstructured.NestedSlice(byKind["Deployment"][0].Object, "spec", "template", "spec", "initContainers")
			if len(ics) != 1 || ics[0].(map[string]any)["image"] != "idharness.local/wiwebhook:dev" {
				t.Errorf("init containers %v, want one running the wiwebhook image", ics)
			}
		}},
		{"authority configuration is valid and has only the authority face", func(t *testing.T) {
			for _, cm := range byKind["ConfigMap"] {
				raw, ok, _ := unstructured.NestedString(cm.Object, "data", "fakeimds.yaml")
				if !ok {
					continue
				}
				var c config.Config
				if err := yaml.UnmarshalStrict([]byte(raw), &c); err != nil {
					t.Fatal(err)
				}
				if err := c.Validate(); err != nil {
					t.Fatalf("authority config invalid: %v\n%s", err, raw)
				}
				if !c.Faces.Authority.On() || c.Faces.IMDS.On() || c.Faces.Instance.On() || c.Faces.AppService.On() || c.Listen.AuthorityTLS == "" {
					t.Errorf("authority config = %+v", c.Faces)
				}
				if len(c.UserAssigned) != 2 {
					t.Errorf("identities = %+v", c.UserAssigned)
				}
				return
			}
			t.Error("no fakeimds.yaml ConfigMap")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
	if _, err := wiObjects(fixtures.Params{Namespace: "x"}); err == nil || !strings.Contains(err.Error(), "needs the wiwebhook") {
		t.Errorf("without images: %v", err)
	}
}

// TestNames: the names suites reach the reference webhook by are those
// its declaration gives (fixtures/sut/reference-webhook, rendered in
// internal/sut's TestShipped); a cluster-scoped name is per stack.
func TestNames(t *testing.T) {
	if got := WIWebhookConfigName("idharness-system"); got != "idharness-wiwebhook-idharness-system" {
		t.Errorf("WIWebhookConfigName = %q: a kept cluster's configuration of an earlier release would stay beside a renamed one", got)
	}
	if WIAuthorityHost("ns") != "https://wi-authority.ns.svc/" {
		t.Errorf("WIAuthorityHost = %q", WIAuthorityHost("ns"))
	}
}
