// Command fakeimds runs the fake Azure Instance Metadata Service and
// authority. Configuration comes from a YAML file (--config or
// FAKEIMDS_CONFIG), then FAKEIMDS_* variables, then flags; --print-config
// shows the result and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/internal/dnsfault"
	"github.com/idharness/idharness/internal/linklocal"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "fakeimds:", err)
		os.Exit(2)
	}
}

// load builds the configuration from defaults, file, env and flags.
func load(args []string, stderr io.Writer, lookup func(string) (string, bool)) (config.Config, bool, error) {
	fs := flag.NewFlagSet("fakeimds", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration file (env FAKEIMDS_CONFIG)")
	printCfg := fs.Bool("print-config", false, "print the effective configuration as YAML and exit")
	config.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config.Config{}, false, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, false, fmt.Errorf("unexpected argument %q; every option is a flag (see -h)", fs.Arg(0))
	}
	cfg := config.Default()
	path := *file
	if path == "" {
		path, _ = lookup("FAKEIMDS_CONFIG")
	}
	if path != "" {
		if err := config.LoadFile(&cfg, path); err != nil {
			return cfg, false, err
		}
	}
	if err := config.ApplyEnv(&cfg, lookup); err != nil {
		return cfg, false, err
	}
	if err := config.ApplyFlags(&cfg, fs); err != nil {
		return cfg, false, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, fmt.Errorf("effective configuration: %w", err)
	}
	return cfg, *printCfg, nil
}

func run(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	if len(args) > 0 && args[0] == dnsfault.Command {
		return runResolver(args[1:], stdout, stderr)
	}
	cfg, printOnly, err := load(args, stderr, lookup)
	if err != nil {
		return err
	}
	if printOnly {
		b, err := yaml.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("render configuration: %w", err)
		}
		_, err = stdout.Write(b)
		return err
	}
	log := newLogger(cfg.Log, stderr)
	srv, err := fakeimds.New(cfg, fakeimds.WithLogger(log))
	if err != nil {
		return err
	}
	if ip := cfg.Listen.LinkLocal; ip != "" {
		if !cfg.Listen.ShadowMetadata {
			provided, err := linklocal.ProvidedByNetwork(ip)
			if err != nil {
				return err
			}
			if provided {
				return fmt.Errorf("this host's network serves %s itself (a host route to it, as Azure's DHCP installs for the real IMDS): fakeimds would hide it from every pod of the node, so it refuses; set listen.shadowMetadata (--shadow-metadata, or idharness run --allow-azure-nodes) to take the address anyway", ip)
			}
		}
		cleanup, err := linklocal.Hold(ip, linklocal.DefaultDevice, linkLocalLifetime)
		if err != nil {
			return err
		}
		log.Info("metadata address added", "ip", ip, "device", linklocal.DefaultDevice)
		defer func() {
			if err := cleanup(); err != nil {
				log.Warn("remove metadata address", "err", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx, func(a fakeimds.Addrs) {
		log.Info("ready", "imds", a.IMDS, "control", a.Control, "arc", a.Arc, "authorityTls", a.AuthorityTLS,
			"identities", len(srv.Store().List()))
	})
}

// runResolver runs the DNS resolver with faults of a scenario's dns
// step (internal/dnsfault): the fakeimds image carries it, so that runs
// need no image of its own. Its events go to stdout, a JSON line each:
// the run reads them from the pod's log.
func runResolver(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeimds "+dnsfault.Command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := dnsfault.Config{Events: stdout}
	fs.StringVar(&cfg.DNS, "dns", ":53", "address to answer DNS on, over UDP and TCP")
	fs.StringVar(&cfg.FaultsFile, "faults-file", dnsfault.FaultsFile, "file that holds the faults in force (in its pod, the downward API file of its "+dnsfault.FaultsAnnotation+" annotation)")
	fs.StringVar(&cfg.Upstream, "upstream", "", "DNS server to forward to, HOST:PORT (default: the first nameserver of --resolv-conf)")
	fs.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "resolver configuration to read the upstream from and to report the search list of")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q; every option is a flag (see -h)", dnsfault.Command, fs.Arg(0))
	}
	srv, err := dnsfault.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

// linkLocalLifetime is how long the metadata address outlives a fakeimds
// that was killed before it could remove it.
const linkLocalLifetime = 30 * time.Second

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
