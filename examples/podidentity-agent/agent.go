package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// run starts the agent with o and returns when it has stopped.
func run(o options, log *slog.Logger) error {
	if o.node == "" || o.listen == "" {
		return errors.New("--node and --listen are required")
	}
	agent, err := netip.ParseAddrPort(o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	meta, err := netip.ParseAddrPort(o.metadata)
	if err != nil {
		return fmt.Errorf("--metadata: %w", err)
	}
	up, err := url.Parse(o.upstream)
	if err != nil || up.Scheme != "http" || up.Host == "" {
		return fmt.Errorf("--upstream %q: want http://HOST", o.upstream)
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client (the agent runs in a pod): %w", err)
	}
	// A few API calls per token request: client-go's default of 5 per
	// second would queue them.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = userAgent
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}

	// Listen before redirecting, so that no redirected connection is
	// refused for want of a listener.
	ln, err := net.Listen("tcp", agent.String())
	if err != nil {
		return err
	}
	rd := Redirect{Metadata: meta, Agent: agent}
	if err := rd.Install(); err != nil {
		return err
	}
	log.Info("redirecting pods' metadata requests", "from", meta, "to", agent, "table", "ip "+TableName, "node", o.node)

	h := &Handler{Cluster: &apiCluster{kube: kube, dyn: dyn, node: o.node}, Upstream: up,
		Client: NewUpstreamClient(o.upstreamTimeout), Retries: o.retries, Interval: o.interval, Log: log}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("stopping")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	if leaving(kube, o, log) {
		err = errors.Join(err, rd.Remove())
		log.Info("removed the redirect", "table", "ip "+TableName)
	} else {
		log.Info("kept the redirect: pods are refused until the next agent answers", "table", "ip "+TableName)
	}
	return err
}

// leaving reports whether the agent's DaemonSet is gone or being
// deleted: the agent is not coming back, and the rule must go with it.
// On a restart, a rollout or an eviction the DaemonSet stays, and so does
// the rule (fail closed).
func leaving(kube kubernetes.Interface, o options, log *slog.Logger) bool {
	if o.namespace == "" || o.daemonSet == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ds, err := kube.AppsV1().DaemonSets(o.namespace).Get(ctx, o.daemonSet, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true
	case err != nil:
		log.Warn("cannot tell whether the DaemonSet is being deleted; keeping the redirect", "err", err)
		return false
	}
	return ds.DeletionTimestamp != nil
}
