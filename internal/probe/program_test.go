package probe

import (
	"context"
	"testing"
	"time"

	"github.com/idharness/idharness/clients"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/internal/nodeimage"
	"github.com/idharness/idharness/pkg/proberesult"
)

// TestProgramClient runs a client program (Python's
// ManagedIdentityCredential) through the probe, as a client image's pod
// does: the probe starts it from IDHARNESS_CLIENT_DIR, drives it over
// the line protocol, and reports its token with the expiry the SDK
// reported; requests are left to the fake's journal (-1 here).
func TestProgramClient(t *testing.T) {
	if testing.Short() {
		t.Skip("prepares the Python client program")
	}
	clearIdentityEnv(t)
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := reg.Lookup("py-azidentity-mi")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := spec.Program.Prepare(ctx, nodeimage.DefaultCacheDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IDHARNESS_CLIENT_DIR", dir)
	_, a := fakeimdstest.Start(t, nil)
	res, sum := runProbe(t, Config{
		Options: Options{Mode: ModeIMDS, IMDSAddr: a.IMDS, Identity: Identity{Kind: ByClientID, Value: fakeimdstest.UserAClientID}},
		Clients: []string{"py-azidentity-mi"}, Resource: uniqueResource(t, ""), Count: 2, Interval: time.Millisecond,
	})
	if sum.OK != 2 || len(res) != 2 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if r.ClientIDGot != fakeimdstest.UserAClientID || r.Requests != proberesult.RequestsUnmeasured || r.FromCache {
			t.Errorf("result %+v: want id-a's token, requests -1, not marked from cache", r)
		}
		if d := r.ExpiresOn.Sub(r.TokenExp); r.ExpiresOn.IsZero() || d > 2*time.Second || d < -2*time.Second {
			t.Errorf("expiresOn %v, JWT exp %v: want the SDK's expiry, here equal to the JWT's within 2 s", r.ExpiresOn, r.TokenExp)
		}
	}
}
