package probe

import (
	"context"
	"os"
	"time"

	"github.com/idharness/idharness/clients"
)

// DefaultProgramDir is where a client image holds its program.
const DefaultProgramDir = "/client"

// startProgram starts a client program (a client of another language
// than Go) in the folder IDHARNESS_CLIENT_DIR names (its image's
// /client). It gets the probe's own environment, as the pod set it (the
// SDKs' variables for the mode included), and the mode and identity. In
// tests (IMDSAddr set) a relay points it at the fake.
func (r *Runner) startProgram(spec clients.Spec) (clients.Client, error) {
	dir := os.Getenv("IDHARNESS_CLIENT_DIR")
	if dir == "" {
		dir = DefaultProgramDir
	}
	relayAddr := ""
	if r.cfg.IMDSAddr != "" {
		relay, err := clients.NewRelay(r.cfg.IMDSAddr)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { _ = relay.Close() })
		relayAddr = relay.Addr()
	}
	env := clients.ProgramEnv(os.Environ(), spec, r.cfg.Mode, r.cfg.Identity, r.cfg.CAFile, relayAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := clients.Start(ctx, spec, clients.StartOptions{Dir: dir, Env: env, Stderr: os.Stderr})
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() { _ = p.Close(10 * time.Second) })
	return p, nil
}

// Close stops the client programs the runner started.
func (r *Runner) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}
