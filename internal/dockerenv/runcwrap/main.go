// Command runcwrap is a runc wrapper for hosts whose capability bounding set
// lacks capabilities that the kernel knows about.
//
// Docker asks runc for every capability when it starts a privileged
// container; runc then fails with "unable to apply caps: operation not
// permitted" for the capabilities outside the bounding set. runcwrap removes
// those capabilities from the OCI config (create, run) or process file (exec)
// and then executes the real runc with the same arguments. hack/docker.sh
// installs it and registers it as dockerd's default runtime only on hosts
// that need it.
package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/idharness/idharness/internal/dockerenv"
)

func main() {
	real := os.Getenv("IDHARNESS_REAL_RUNC")
	if real == "" {
		real = "/usr/sbin/runc"
	}
	if err := filter(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
		os.Exit(1)
	}
	argv := append([]string{real}, os.Args[1:]...)
	if err := syscall.Exec(real, argv, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v (set IDHARNESS_REAL_RUNC to the runc binary)\n", real, err)
		os.Exit(1)
	}
}

func filter(args []string) error {
	files := dockerenv.RuncSpecFiles(args)
	if len(files) == 0 {
		return nil
	}
	drop, err := dockerenv.HostMissingCaps()
	if err != nil || len(drop) == 0 {
		return err
	}
	for path, whole := range files {
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		var out []byte
		if whole {
			out, err = dockerenv.FilterBundleCaps(b, drop)
		} else {
			out, err = dockerenv.FilterProcessCaps(b, drop)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if string(out) == string(b) {
			continue
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return fmt.Errorf("rewrite %s: %w", path, err)
		}
	}
	return nil
}
