package stack

import (
	"encoding/base64"
	"encoding/pem"
	"slices"
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

func TestWIObjects(t *testing.T) {
	objs, err := wiObjects(wiParams(), true)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]*unstructured.Unstructured{}
	for _, o := range objs {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
		if o.GetLabels()["app.kubernetes.io/part-of"] != "idharness" {
			t.Errorf("%s %s is not labelled as idharness's", o.GetKind(), o.GetName())
		}
	}
	for kind, n := range map[string]int{"Deployment": 2, "Service": 2, "ServiceAccount": 2, "Secret": 2, "ConfigMap": 2,
		"ClusterRole": 1, "ClusterRoleBinding": 1, "MutatingWebhookConfiguration": 1} {
		if len(byKind[kind]) != n {
			t.Errorf("%d %s objects, want %d", len(byKind[kind]), kind, n)
		}
	}
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"caBundle is the webhook's CA", func(t *testing.T) {
			wh, _, _ := unstructured.NestedSlice(byKind["MutatingWebhookConfiguration"][0].Object, "webhooks")
			w := wh[0].(map[string]any)
			ca, _, _ := unstructured.NestedString(w, "clientConfig", "caBundle")
			b, err := base64.StdEncoding.DecodeString(ca)
			if blk, _ := pem.Decode(b); err != nil || blk == nil || blk.Type != "CERTIFICATE" {
				t.Errorf("caBundle is not a base64 PEM certificate: %v", err)
			}
			if w["failurePolicy"] != "Fail" || w["sideEffects"] != "None" || w["reinvocationPolicy"] != "IfNeeded" {
				t.Errorf("webhook = %v", w)
			}
		}},
		{"namespaces with a configuration of their own are skipped", func(t *testing.T) {
			wh, _, _ := unstructured.NestedSlice(byKind["MutatingWebhookConfiguration"][0].Object, "webhooks")
			exprs, _, _ := unstructured.NestedSlice(wh[0].(map[string]any), "namespaceSelector", "matchExpressions")
			found := false
			for _, e := range exprs {
				m := e.(map[string]any)
				found = found || (m["key"] == WIOwnWebhookLabel && m["operator"] == "DoesNotExist")
			}
			if !found {
				t.Errorf("namespaceSelector %v does not skip namespaces labelled %s: a wiPod step's slow webhook would meet the stack's too", exprs, WIOwnWebhookLabel)
			}
			for _, d := range byKind["Deployment"] {
				cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
				args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
				if d.GetName() == WIWebhookName && !slices.Contains(args, "--test-paths") {
					t.Errorf("the webhook runs without --test-paths, which wiPod steps reach: %v", args)
				}
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
		{"webhook points pods at the authority's Service", func(t *testing.T) {
			for _, d := range byKind["Deployment"] {
				if d.GetName() != WIWebhookName {
					continue
				}
				cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
				args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
				if !strings.Contains(strings.Join(args, " "), "--authority-host=https://wi-authority.idharness-system.svc/") {
					t.Errorf("webhook args = %v", args)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
	if _, err := wiObjects(fixtures.Params{Namespace: "x"}, true); err == nil || !strings.Contains(err.Error(), "needs the wiwebhook") {
		t.Errorf("without images: %v", err)
	}
}

// TestWIPartsSplit checks that the authority and the webhook render apart,
// so a profile can replace the webhook and keep the authority.
func TestWIPartsSplit(t *testing.T) {
	p := wiParams()
	auth, err := wiPart(true)(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Images.Extra = nil // no webhook image: the authority alone still renders
	if _, err := wiPart(true)(p); err != nil {
		t.Fatalf("authority without the webhook image: %v", err)
	}
	if _, err := wiPart(false)(p); err == nil {
		t.Fatal("webhook rendered without its image")
	}
	hook, err := wiPart(false)(wiParams())
	if err != nil {
		t.Fatal(err)
	}
	all, _ := wiObjects(wiParams(), true)
	if len(auth)+len(hook) != len(all) || len(auth) == 0 || len(hook) == 0 {
		t.Fatalf("split %d + %d of %d objects", len(auth), len(hook), len(all))
	}
	for _, o := range auth {
		if !strings.HasPrefix(o.GetName(), WIAuthorityName) {
			t.Errorf("authority part holds %s %s", o.GetKind(), o.GetName())
		}
	}
	for _, o := range hook {
		if o.GetKind() == "Deployment" && o.GetName() != WIWebhookName {
			t.Errorf("webhook part holds deployment %s", o.GetName())
		}
	}
}

// TestWIWebhookOf names the workload identity webhook under test from
// what a stack deploys: a vendor's implementation claiming workload
// identity is the one judged even beside the reference webhook; the
// reference webhook otherwise, or none.
func TestWIWebhookOf(t *testing.T) {
	selected := func(t *testing.T, profile string) []Component {
		names, err := ProfileComponents(profile)
		if err != nil {
			t.Fatal(err)
		}
		comps, err := Selected(names)
		if err != nil {
			t.Fatal(err)
		}
		return comps
	}
	profiles["vendor-test"] = Profile{Name: "vendor-test", Without: []string{WorkloadIdentityComponent}, Modes: []string{"workload-identity"}}
	defer delete(profiles, "vendor-test")
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"profile imds", Options{Components: selected(t, "imds"), Claims: []string{"imds", "workload-identity", "app-service"}}, WIWebhookReference},
		{"profile reference", Options{Components: selected(t, "reference"), Claims: []string{"imds", "pod-identity", "workload-identity"}}, WIWebhookReference},
		{"a pod identity agent as data leaves the reference webhook under test", Options{Components: selected(t, "imds"), SUT: "aad-pod-identity", Claims: []string{"pod-identity"}}, WIWebhookReference},
		{"a vendor's webhook as data, beside the reference one", Options{Components: selected(t, "imds"), SUT: "acme-wi", Claims: []string{"workload-identity"}}, "acme-wi"},
		{"a profile without the reference webhook", Options{Components: selected(t, "vendor-test"), Claims: []string{"workload-identity"}}, WIWebhookNone},
	} {
		if got := wiWebhookOf(tc.opts); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
