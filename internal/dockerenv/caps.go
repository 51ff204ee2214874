// Package dockerenv inspects and prepares the Docker engine that idharness
// runs kind clusters on, and runs its CLI (Run).
//
// Some CI virtual machines start every process with a capability bounding set
// that lacks capabilities the kernel knows about (CAP_SYS_RESOURCE on the
// machines idharness was first built on). `docker run --privileged`, which kind
// always uses, then fails in runc with "unable to apply caps". The package
// detects that condition from /proc and provides the pieces of the fix: the
// list of capabilities to drop and an OCI spec filter used by the runc wrapper
// in the runcwrap sub-package.
package dockerenv

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNames lists Linux capability names by bit number (see capabilities(7)).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapName returns the name of capability bit, such as "CAP_SYS_RESOURCE", or
// "CAP_<n>" for a bit this package has no name for.
func CapName(bit int) string {
	if bit >= 0 && bit < len(capNames) {
		return capNames[bit]
	}
	return "CAP_" + strconv.Itoa(bit)
}

// ParseCapBnd returns the capability bounding set from the text of a
// /proc/<pid>/status file.
func ParseCapBnd(status string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "CapBnd" {
			continue
		}
		bnd, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse CapBnd %q: %w", strings.TrimSpace(v), err)
		}
		return bnd, nil
	}
	return 0, fmt.Errorf("no CapBnd line in process status")
}

// MissingCaps returns the names of the capabilities numbered 0..lastCap that
// are not in the bounding set bnd, in bit order. An empty result means that
// privileged containers can be given every capability the kernel knows.
func MissingCaps(bnd uint64, lastCap int) []string {
	var out []string
	for bit := 0; bit <= lastCap && bit < 64; bit++ {
		if bnd&(1<<uint(bit)) == 0 {
			out = append(out, CapName(bit))
		}
	}
	return out
}

// HostMissingCaps reads the bounding set of the calling process and the
// kernel's highest capability number, and returns the capabilities a
// privileged container cannot get on this host.
func HostMissingCaps() ([]string, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read capability bounding set: %w", err)
	}
	bnd, err := ParseCapBnd(string(status))
	if err != nil {
		return nil, err
	}
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return nil, fmt.Errorf("read highest capability number: %w", err)
	}
	lastCap, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		return nil, fmt.Errorf("parse /proc/sys/kernel/cap_last_cap: %w", err)
	}
	return MissingCaps(bnd, lastCap), nil
}
