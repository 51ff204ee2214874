// Command nodeagent is idharness's reference pod identity node agent (see
// internal/nodeagent): run on every node's host network, it redirects
// pods' requests for 169.254.169.254:80 to itself with an nftables rule,
// answers them from the AzureIdentity / AzureIdentityBinding objects.
// When it stops (SIGTERM or SIGINT) it keeps the rule, so that pods fail
// closed until the next agent takes over, unless it is being uninstalled
// (--on-exit, nodeagent.Uninstalling).
//
// Flags: --node-name and --host-ip (the downward API gives both),
// --pod-name and --pod-namespace (likewise, for --on-exit=auto), --port,
// --upstream, --upstream-timeout, --opt-in-label, --attempts, --interval, --pod-wait,
// --retry-after, --block-instance-metadata, --on-exit, --kubeconfig
// (in-cluster configuration when empty), --no-redirect (serve only, for
// local runs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/idharness/idharness/internal/nodeagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := run
	if len(os.Args) > 1 && os.Args[1] == "guard" {
		run = guard
		os.Args = os.Args[1:]
	}
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nodeagent", flag.ContinueOnError)
	node := fs.String("node-name", "", "this node's name: only its pods are watched")
	hostIP := fs.String("host-ip", "", "this node's IPv4 address: pods' requests are redirected to it (required unless --no-redirect)")
	port := fs.Int("port", 2579, "port the agent listens on, on --host-ip")
	upstream := fs.String("upstream", "http://169.254.169.254", "the node's metadata endpoint")
	upstreamTimeout := fs.Duration("upstream-timeout", nodeagent.DefaultUpstreamTimeout, "longest wait for one answer from --upstream")
	optIn := fs.String("opt-in-label", "", "label selector of the namespaces that get pod identity; pods elsewhere are passed through unchanged (empty: every namespace)")
	attempts := fs.Int("attempts", 5, "tries to find a pod's binding (and the pod) before refusing")
	interval := fs.Duration("interval", 500*time.Millisecond, "wait between those tries")
	podWait := fs.Duration("pod-wait", 10*time.Second, "how long to wait for a calling pod to show up (its IP in the API server), looked for at every pod event and every --interval, before refusing")
	retryAfter := fs.Duration("retry-after", 0, "when positive, refuse unbound pods with 503 and this Retry-After instead of 404")
	block := fs.Bool("block-instance-metadata", false, "refuse /metadata/instance to pods with 403")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (empty: in-cluster configuration)")
	noRedirect := fs.Bool("no-redirect", false, "do not install the node's redirect rule (for local runs)")
	onExit := fs.String("on-exit", nodeagent.ExitAuto, "the redirect when the agent stops: auto (remove it only when the agent's DaemonSet is gone or being deleted), keep (pods fail closed until the next agent) or remove")
	podName := fs.String("pod-name", "", "this agent's pod name (downward API), for --on-exit=auto")
	podNS := fs.String("pod-namespace", "", "this agent's pod namespace (downward API), for --on-exit=auto")
	hookRoot := fs.String("boot-hook-root", "", "where the node's "+nodeagent.HookUnitDir+" and "+nodeagent.HookBinDir+" are mounted: install the boot hook that refuses pods' metadata requests from the node's boot until the agent is back (empty: no hook; a rebooted node then lets pods that start before the agent reach the metadata endpoint)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(nodeagent.ExitPolicies, *onExit) {
		return fmt.Errorf("--on-exit %q: want one of %s", *onExit, strings.Join(nodeagent.ExitPolicies, ", "))
	}
	if *onExit == nodeagent.ExitAuto && !*noRedirect && (*podName == "" || *podNS == "") {
		return fmt.Errorf("--on-exit=auto needs --pod-name and --pod-namespace (the downward API's metadata.name and metadata.namespace) to tell a restart from an uninstall; or pass --on-exit=keep or remove")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	sel, err := labels.Parse(*optIn)
	if err != nil {
		return fmt.Errorf("--opt-in-label %q: want a label selector such as idharness.io/pod-identity=true: %w", *optIn, err)
	}
	var cfg *rest.Config
	if *kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", *kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("kubernetes configuration (run in a pod, or pass --kubeconfig): %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	inf, err := nodeagent.StartInformers(ctx, kube, dyn, *node, sel, time.Minute)
	if err != nil {
		return err
	}
	// Grants are confirmed by live reads on an HTTP client of their own:
	// see nodeagent.LiveClients.
	// A token request costs a few live reads (pod, bindings, identities):
	// client-go's default 5 requests/s would refuse tokens on a busy node
	// (503, "client rate limiter") before the API server is anywhere near
	// its limits, which its own priority and fairness enforce.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 50, 100
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes HTTP client: %w", err)
	}
	liveKube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	liveDyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	inf = inf.WithLiveClients(nodeagent.LiveClients{Kube: liveKube, Dyn: liveDyn, Reset: func() { utilnet.CloseIdleConnectionsFor(hc.Transport) }})
	h, err := nodeagent.NewHandler(nodeagent.Config{Upstream: *upstream, Attempts: *attempts, Interval: *interval, PodWait: *podWait,
		RetryAfter: *retryAfter, BlockInstanceMetadata: *block, UpstreamTimeout: *upstreamTimeout, Log: log}, inf)
	if err != nil {
		return err
	}
	listen := net.JoinHostPort(*hostIP, strconv.Itoa(*port))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	if !*noRedirect {
		ip := net.ParseIP(*hostIP)
		if ip == nil {
			return fmt.Errorf("--host-ip %q: want this node's IPv4 address (the downward API's status.hostIP)", *hostIP)
		}
		rd := nodeagent.Redirect{MetadataIP: net.ParseIP(metadataIP), MetadataPort: metadataPort, AgentIP: ip, AgentPort: uint16(*port)}
		if err := rd.Install(); err != nil {
			return err
		}
		hook := nodeagent.BootHook{Root: *hookRoot}
		if *hookRoot != "" {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("boot hook: find the agent's binary: %w", err)
			}
			// A failed hook fails the agent, whose kept redirect refuses
			// pods meanwhile: a node that would leak tokens after its
			// next reboot must not look healthy.
			if err := hook.Install(exe); err != nil {
				return err
			}
			log.Info("boot hook installed: pods' metadata requests are refused from boot until the agent is back", "unit", nodeagent.HookUnit)
		}
		// However run returns, the rule stays unless the agent goes for
		// good: see nodeagent.ExitAuto for why.
		defer func() {
			remove := *onExit == nodeagent.ExitRemove
			if *onExit == nodeagent.ExitAuto {
				actx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				var err error
				if remove, err = nodeagent.Uninstalling(actx, kube, *podNS, *podName); err != nil {
					log.Error("cannot tell a restart from an uninstall; keeping the redirect (pods fail closed)", "err", err)
				}
			}
			if !remove {
				log.Info("redirect kept: pods' metadata requests are refused until the next agent starts", "onExit", *onExit)
				return
			}
			if err := rd.Remove(); err != nil {
				log.Error("remove redirect", "err", err)
				return
			}
			if *hookRoot != "" {
				if err := hook.Remove(); err != nil {
					log.Error("remove boot hook", "err", err)
				}
			}
			log.Info("redirect and boot hook removed", "onExit", *onExit)
		}()
		log.Info("redirect installed", "table", nodeagent.TableName, "to", listen)
		// After the rule, so that a cut connection's reconnect is redirected.
		if n, err := rd.CutBypasses(); err != nil {
			log.Error("pods' connections opened before the redirect may still bypass it", "err", err)
		} else if n > 0 {
			log.Info("cut pods' connections that bypassed the redirect", "connections", n)
		}
	}
	srv := newServer(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", listen, "node", *node, "upstream", *upstream, "optIn", sel.String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// What pods call: the metadata endpoint the agent stands in front of.
const (
	metadataIP   = "169.254.169.254"
	metadataPort = 80
)

// guard is `nodeagent guard`, run by the boot hook's unit before
// containerd: it installs the node's guard (nodeagent.Guard) and exits.
func guard(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("nodeagent guard", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := (nodeagent.Guard{MetadataIP: net.ParseIP(metadataIP), MetadataPort: metadataPort}).Install(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "nodeagent guard: pods' requests for %s:%d are refused until the agent installs its redirect\n", metadataIP, metadataPort)
	return nil
}

// newServer is the agent's server for h. Every pod on the node can open
// connections to it, so none may hold one for long: a slow request line
// and headers are cut after ReadHeaderTimeout, an idle keep-alive
// connection after IdleTimeout, and headers beyond MaxHeaderBytes get 431
// (IMDS clients send a few hundred bytes). No WriteTimeout: a token
// request legitimately waits for the binding retries and a slow upstream,
// which the handler bounds itself (--attempts, --upstream-timeout).
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
