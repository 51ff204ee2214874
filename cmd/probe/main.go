// Command probe is idharness's sample workload. It acquires Azure tokens
// with real clients (azidentity, MSAL Go, raw HTTP), once or in a loop,
// optionally reads a secret from the protected resource with each token,
// and writes one JSON line per attempt to stdout, then a summary line
// {"summary":true,…}. Suites read the lines from pod logs.
//
// Every flag has an environment variable: PROBE_ and the flag's name in
// upper case with - as _ (--vault-url is PROBE_VAULT_URL). Flags win.
//
// Exit status: 0 when every attempt succeeded (or with --exit-zero), 1
// when one failed, so that a Job shows failure, 2 for bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/idharness/idharness/internal/flagenv"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/pkg/escape"
)

// errFailed is returned when an attempt failed; main exits 1 on it.
var errFailed = errors.New("an attempt failed")

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv, os.Setenv)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errFailed):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool), setenv func(string, string) error) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		clients    = fs.String("client", "", "comma-separated clients ("+strings.Join(probe.AllClients(), ", ")+"); default: all that apply to the mode and identity")
		mode       = fs.String("mode", probe.ModeIMDS, "identity mode: "+strings.Join(probe.Modes(), ", "))
		identity   = fs.String("identity", "system", "identity to ask for: system, client_id=GUID, object_id=GUID or resource_id=/subscriptions/…")
		resource   = fs.String("resource", probe.DefaultResource, "resource to ask tokens for")
		count      = fs.Int("count", 0, "number of rounds (every client once per round); default 1 unless --duration is set")
		interval   = fs.Duration("interval", 0, "pause between the starts of rounds (default 1s when looping)")
		duration   = fs.Duration("duration", 0, "run rounds for this long (with --count, whichever ends first)")
		parallel   = fs.Int("parallel", 1, fmt.Sprintf("calls each client makes at once per round, on the same client (1 to %d); each is a result line with its call number", probe.MaxParallel))
		timeout    = fs.Duration("timeout", probe.DefaultTimeout, "bound on each token call and each resource request")
		vaultURL   = fs.String("vault-url", "", "protected resource base URL; with --secret, each token reads that secret")
		secret     = fs.String("secret", "", "secret name to read at --vault-url")
		imdsAddr   = fs.String("imds-addr", "", "test only: dial this HOST:PORT instead of 169.254.169.254:80")
		caFile     = fs.String("ca-file", "", "PEM CA bundle to trust for HTTPS besides the system roots (the fake authority's ca.crt)")
		noDisc     = fs.Bool("disable-instance-discovery", false, "workload identity clients: skip instance discovery at login.microsoftonline.com")
		noMetadata = fs.Bool("raw-no-metadata", false, "raw client: omit the Metadata header (negative wire check)")
		xff        = fs.String("raw-forwarded-for", "", "raw client: send this X-Forwarded-For value (negative wire check)")
		exitZero   = fs.Bool("exit-zero", false, "exit 0 even when attempts failed")
		startAt    = fs.String("start-at", "", "wait until this time (RFC 3339, e.g. 2026-01-02T15:04:05.5Z) before the first round; --duration counts from it, so that pods started one by one share a start")
		startDelay = fs.Duration("start-delay", 0, "wait this long after the probe starts before the first round (with --start-at, whichever is later): an agent may not know a pod in its first second, and aad-pod-identity documents that applications retry then")
		endAt      = fs.String("end-at", "", "stop at this time (RFC 3339), cutting off a call in progress as SIGTERM would; the summary line is still written")
		startFile  = fs.String("start-file", "", "instead of --start-at and --end-at: once the clients are built, wait until this file holds the run's start (RFC 3339; an in-cluster scenario's runner writes it, through a downward API file of the pod's annotation, once every probe pod is ready); --start-offset and --end-offset count from it")
		startOff   = fs.Duration("start-offset", 0, "with --start-file: the first round starts this long after the run's start")
		endOff     = fs.Duration("end-offset", 0, "with --start-file: stop this long after the run's start (as --end-at); 0: no end")
		readyPort  = fs.Int("ready-port", 0, "once the clients are built, accept and close TCP connections on this port until the first round, so that a startupProbe knows the probe is ready; 0: none")
		tag        = fs.String("tag", "", "extra User-Agent token for every request, e.g. idharness-client/mi-1, so that the fake's journal attributes requests to this probe")
		escapes    = fs.String("escape", "", "instead of the clients, send every escape attempt of this plan (pkg/escape, base64url JSON) as raw HTTP and write one JSON line each")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; every option is a flag (see -h)", fs.Arg(0))
	}
	// Environment variables fill the flags not given on the command line.
	if err := flagenv.Apply(fs, "PROBE_", lookup); err != nil {
		return err
	}
	if *escapes != "" {
		return runEscapes(ctx, *escapes, *timeout, stdout)
	}
	id, err := probe.ParseIdentity(*identity)
	if err != nil {
		return err
	}
	start, end, err := parseWindow(*startAt, *endAt)
	if err != nil {
		return err
	}
	if err := checkStartFile(*startFile, *startAt, *endAt, *startOff, *endOff); err != nil {
		return err
	}
	if *startDelay < 0 {
		return fmt.Errorf("--start-delay %s is negative", *startDelay)
	}
	if d := time.Now().Add(*startDelay); *startDelay > 0 && d.After(start) {
		start = d
	}
	var names []string
	for _, n := range strings.Split(*clients, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	// DefaultAzureCredential takes a user-assigned identity only from
	// AZURE_CLIENT_ID; set it as a user would, unless the pod already did.
	if id.Kind == probe.ByClientID && *mode != probe.ModeWorkloadIdentity {
		if _, ok := lookup("AZURE_CLIENT_ID"); !ok {
			if err := setenv("AZURE_CLIENT_ID", id.Value); err != nil {
				return fmt.Errorf("set AZURE_CLIENT_ID for azidentity-default: %w", err)
			}
		}
	}
	cfg := probe.Config{
		Options: probe.Options{
			Mode: *mode, Identity: id, IMDSAddr: *imdsAddr, CAFile: *caFile,
			DisableInstanceDiscovery: *noDisc, RawNoMetadata: *noMetadata, RawForwardedFor: *xff,
		},
		Clients: names, Resource: *resource, Count: *count, Interval: *interval, Duration: *duration,
		Timeout: *timeout, VaultURL: *vaultURL, Secret: *secret, Tag: *tag, Parallel: *parallel,
	}
	r, err := probe.NewRunner(cfg, stdout)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ready io.Closer = io.NopCloser(nil)
	if *readyPort > 0 {
		if ready, err = probe.ListenReady(*readyPort); err != nil {
			return err
		}
	}
	start, end, err = waitStartFile(ctx, *startFile, *startOff, *endOff, start, end)
	// The port is for start-up only: closed before the first round.
	_ = ready.Close()
	if err != nil {
		return err
	}
	if !end.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	// The clients are built before the wait, so that the first round
	// starts on time; a run interrupted while waiting still writes its
	// (empty) summary.
	waitUntil(ctx, start)
	sum, err := r.Run(ctx)
	if err != nil {
		return err
	}
	if sum.Errors > 0 && !*exitZero {
		return errFailed
	}
	return nil
}

// runEscapes sends every attempt of the encoded escape plan and writes
// one JSON result line each. Refusals are the expected outcome, so it
// exits 0 whatever came back; specs judge the lines.
func runEscapes(ctx context.Context, plan string, timeout time.Duration, stdout io.Writer) error {
	p, err := escape.DecodeParams(plan)
	if err != nil {
		return err
	}
	if timeout > 5*time.Second {
		timeout = 5 * time.Second
	}
	enc := json.NewEncoder(stdout)
	for _, r := range escape.SendAll(ctx, escape.Plan(p), timeout, escape.InFlight) {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// maxStartWait bounds the wait for --start-file: far beyond any pod's
// start-up (the runner gives them minutes).
const maxStartWait = 15 * time.Minute

// checkStartFile rejects --start-file beside --start-at or --end-at (two
// starts), and the offsets without it or negative.
func checkStartFile(file, startAt, endAt string, startOff, endOff time.Duration) error {
	switch {
	case file != "" && (startAt != "" || endAt != ""):
		return errors.New("--start-file sets the start and end: drop --start-at and --end-at, or use --start-offset and --end-offset")
	case file == "" && (startOff != 0 || endOff != 0):
		return errors.New("--start-offset and --end-offset count from --start-file's time: give --start-file, or use --start-at and --end-at")
	case startOff < 0 || endOff < 0:
		return fmt.Errorf("--start-offset %s and --end-offset %s must not be negative", startOff, endOff)
	case endOff != 0 && endOff <= startOff:
		return fmt.Errorf("--end-offset %s is not after --start-offset %s", endOff, startOff)
	}
	return nil
}

// waitStartFile, when file is set, waits for the run's start in it and
// returns the window it gives (the later of it and start, which
// --start-delay set, and the end); with no file it returns start and end.
func waitStartFile(ctx context.Context, file string, startOff, endOff time.Duration, start, end time.Time) (time.Time, time.Time, error) {
	if file == "" {
		return start, end, nil
	}
	// A runner that died before writing the start leaves no pod waiting
	// for ever.
	ctx, cancel := context.WithTimeout(ctx, maxStartWait)
	defer cancel()
	zero, err := probe.WaitStart(ctx, file)
	if err != nil {
		return start, end, err
	}
	if s := zero.Add(startOff); s.After(start) {
		start = s
	}
	if endOff > 0 {
		end = zero.Add(endOff)
	}
	return start, end, nil
}

// parseWindow reads --start-at and --end-at; either may be empty.
func parseWindow(startAt, endAt string) (start, end time.Time, err error) {
	if startAt != "" {
		if start, err = time.Parse(time.RFC3339Nano, startAt); err != nil {
			return start, end, fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2026-01-02T15:04:05.5Z", startAt)
		}
	}
	if endAt != "" {
		if end, err = time.Parse(time.RFC3339Nano, endAt); err != nil {
			return start, end, fmt.Errorf("--end-at %q: want an RFC 3339 time such as 2026-01-02T15:04:05.5Z", endAt)
		}
		if !start.IsZero() && !end.After(start) {
			return start, end, fmt.Errorf("--end-at %s is not after --start-at %s", endAt, startAt)
		}
	}
	return start, end, nil
}

// waitUntil sleeps until t (at once when t is zero or past) or until ctx
// ends.
func waitUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if t.IsZero() || d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}
