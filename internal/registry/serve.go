package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// Handler is an OCI registry (the distribution API: push, pull, tags,
// catalog) that keeps manifests in memory and blobs in dir, or in memory
// too when dir is empty. Requests are logged at debug level to log.
func Handler(dir string, log *slog.Logger) (http.Handler, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := []ggcrregistry.Option{ggcrregistry.Logger(slog.NewLogLogger(log.Handler(), slog.LevelDebug))}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("registry blob directory: %w", err)
		}
		opts = append(opts, ggcrregistry.WithBlobHandler(ggcrregistry.NewDiskBlobHandler(dir)))
	}
	return ggcrregistry.New(opts...), nil
}

// Serve serves Handler(dir) on addr until ctx ends. ready, when not nil,
// receives the listening address once the registry accepts connections.
func Serve(ctx context.Context, addr, dir string, log *slog.Logger, ready func(net.Addr)) error {
	if log == nil {
		log = slog.Default()
	}
	h, err := Handler(dir, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("registry: listen on %s: %w (is another registry or program on that port? give another --addr)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	if ready != nil {
		ready(ln.Addr())
	}
	log.Info("registry serving", "addr", ln.Addr().String(), "blobs", blobsWhere(dir))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if e := <-errc; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
		return err
	}
}

func blobsWhere(dir string) string {
	if dir == "" {
		return "memory"
	}
	return dir
}
