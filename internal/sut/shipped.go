package sut

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
)

// LoadShipped loads the declaration idharness ships under name
// (fixtures/sut/NAME, embedded in the binary): its files are written
// under cacheDir/sut/NAME-HASH (HASH of their contents, so that a newer
// binary never reads an older copy) and loaded from there, so that its
// errors and manifests point at files one can open.
func LoadShipped(name, cacheDir string) (*SUT, error) {
	fsys, err := fixtures.ShippedSUT(name)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shipped implementation %s: %w", name, err)
	}
	dir := filepath.Join(cacheDir, "sut", name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(filepath.Join(dir, "sut.yaml")); err != nil {
		if err := extract(fsys, dir); err != nil {
			return nil, fmt.Errorf("shipped implementation %s: write its files: %w (is %s writable? --cache-dir moves it)", name, err, cacheDir)
		}
	}
	s, err := Load(filepath.Join(dir, "sut.yaml"))
	if err != nil {
		return nil, err
	}
	s.shipped = name
	return s, nil
}

// Shipped is the name of the declaration idharness ships that s was
// loaded as (LoadShipped), or empty for a user's file.
func (s *SUT) Shipped() string { return s.shipped }

// ReferenceWebhook is the shipped declaration of idharness's reference
// workload identity webhook (cmd/wiwebhook): every profile deploys it,
// and a run of a user's file (--sut) deploys it beside an implementation
// that does not claim workload identity.
const ReferenceWebhook = "reference-webhook"

// ForProfile loads the declarations a run of the named profile deploys
// (stack.ProfileSUTs), the implementation under test first; cacheDir is
// where LoadShipped writes them.
func ForProfile(profile, cacheDir string) ([]*SUT, error) {
	names, err := stack.ProfileSUTs(profile)
	if err != nil {
		return nil, err
	}
	out := make([]*SUT, 0, len(names))
	for _, n := range names {
		s, err := LoadShipped(n, cacheDir)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", profile, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// WithCompanions returns the declarations a run of s (--sut) deploys: s
// first, then the reference workload identity webhook unless s claims
// workload identity (it brings its own; ours beside it would mutate the
// same pods, and the specs would judge both).
func WithCompanions(s *SUT, cacheDir string) ([]*SUT, error) {
	if slices.Contains(s.Claims, stack.ClaimWorkloadIdentity) {
		return []*SUT{s}, nil
	}
	wh, err := LoadShipped(ReferenceWebhook, cacheDir)
	if err != nil {
		return nil, err
	}
	if wh.Name == s.Name {
		return nil, s.fail("name", "%q is the name of idharness's reference workload identity webhook, which the run deploys beside the implementation: rename it", s.Name)
	}
	return []*SUT{s, wh}, nil
}

// WIWebhook names the workload identity webhook under test among the
// declarations a run deploys (stack.Options.WIWebhook): the first that
// claims workload identity, stack.WIWebhookReference when that is the
// shipped reference webhook, or stack.WIWebhookNone.
func WIWebhook(suts []*SUT) string {
	for _, s := range suts {
		if !slices.Contains(s.Claims, stack.ClaimWorkloadIdentity) {
			continue
		}
		if s.Shipped() == ReferenceWebhook {
			return stack.WIWebhookReference
		}
		return s.Name
	}
	return stack.WIWebhookNone
}

// Agents are the pod identity agents' DaemonSets of the declarations a
// run deploys (SUT.Agents of each).
func Agents(suts []*SUT) []string {
	var out []string
	for _, s := range suts {
		out = append(out, s.Agents()...)
	}
	return out
}

// Names are the declarations' names, in order.
func Names(suts []*SUT) []string {
	out := make([]string, 0, len(suts))
	for _, s := range suts {
		out = append(out, s.Name)
	}
	return out
}

// extract writes fsys into dir, atomically: into a temporary sibling
// renamed at the end, so that an interrupted copy is never loaded.
func extract(fsys fs.FS, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.CopyFS(tmp, fsys); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil && !dirHasSUT(dir) {
		return err
	}
	return nil
}

// dirHasSUT says whether another run extracted the same files first.
func dirHasSUT(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "sut.yaml"))
	return err == nil
}
