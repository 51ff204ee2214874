package nodeagent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The boot hook's paths on the node. The agent sees them under
// BootHook.Root, where its DaemonSet mounts the node's directories.
const (
	// HookUnitDir is where systemd reads administrator units.
	HookUnitDir = "/etc/systemd/system"
	// HookUnit is the unit that runs the guard at boot.
	HookUnit = "idharness-nodeagent-guard.service"
	// HookBinDir holds the copy of the agent's binary the unit runs: the
	// agent's image is not there when the node boots.
	HookBinDir = "/var/lib/idharness-nodeagent"
	// hookWants makes the unit part of every normal boot.
	hookWants = "multi-user.target.wants"
)

// BootHook puts the Guard in place at every boot of the node, before
// containerd (and so any pod) starts: a systemd unit of the node running
// `nodeagent guard` from a copy of the agent's binary. The agent installs
// it when it starts and removes it with its Redirect when it is
// uninstalled, so a node without the agent boots without the guard.
type BootHook struct {
	// Root is where the node's HookUnitDir and HookBinDir are mounted in
	// the agent's file system (the DaemonSet mounts them at
	// Root+HookUnitDir and Root+HookBinDir); "" is the node's own root.
	Root string
}

// Unit returns the unit file that runs bin (a path on the node) as
// `bin guard` before containerd and the kubelet.
func (BootHook) Unit(bin string) string {
	return `# Installed by idharness's reference pod identity node agent, removed
# when the agent is uninstalled. It refuses pods' metadata requests from
# boot until the agent replaces this rule with its redirect, so that no pod
# started before the agent reaches the node's metadata endpoint.
[Unit]
Description=idharness node agent: refuse pods' metadata requests until the agent is back
DefaultDependencies=no
Before=containerd.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + bin + ` guard

[Install]
WantedBy=multi-user.target
`
}

// Install copies the binary at exe to the node, writes the unit and
// enables it, replacing what an earlier agent installed. Each file is
// written beside its final name and renamed over it, so a node that
// reboots mid-install boots with the old hook or the new one.
func (h BootHook) Install(exe string) error {
	bin := filepath.Join(HookBinDir, "nodeagent")
	if err := copyFile(exe, filepath.Join(h.Root, bin), 0o755); err != nil {
		return fmt.Errorf("boot hook: copy the agent's binary to the node (is %s mounted from the node?): %w", filepath.Join(h.Root, HookBinDir), err)
	}
	unit := filepath.Join(h.Root, HookUnitDir, HookUnit)
	if err := writeFile(unit, []byte(h.Unit(bin)), 0o644); err != nil {
		return fmt.Errorf("boot hook: write the unit (is %s mounted from the node?): %w", filepath.Join(h.Root, HookUnitDir), err)
	}
	wants := filepath.Join(h.Root, HookUnitDir, hookWants)
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("boot hook: %w", err)
	}
	link := filepath.Join(wants, HookUnit)
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	// The link's target is read by the node's systemd: a node path.
	if err := os.Symlink(filepath.Join(HookUnitDir, HookUnit), tmp); err != nil {
		return fmt.Errorf("boot hook: enable the unit: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("boot hook: enable the unit: %w", err)
	}
	return nil
}

// Remove deletes the hook's files; those already gone are not an error.
func (h BootHook) Remove() error {
	var errs []error
	for _, p := range []string{
		filepath.Join(h.Root, HookUnitDir, hookWants, HookUnit),
		filepath.Join(h.Root, HookUnitDir, HookUnit),
		filepath.Join(h.Root, HookBinDir, "nodeagent"),
	} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("boot hook: remove: %w", err)
	}
	return nil
}

// copyFile copies src to dst through a temporary file renamed over dst.
func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFrom(dst, in, mode)
}

// writeFile writes b to dst through a temporary file renamed over dst.
func writeFile(dst string, b []byte, mode fs.FileMode) error {
	return writeFrom(dst, bytes.NewReader(b), mode)
}

func writeFrom(dst string, r io.Reader, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
