package fakeimds

// The authority face is being written; this file holds its entry points.

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"

	"github.com/idharness/idharness/fakeimds/config"
)

type authority struct{}

func newAuthority(cfg config.Authority, log *slog.Logger) (*authority, error) {
	return &authority{}, nil
}

func (s *Server) mountAuthority(mux *http.ServeMux) {}

func (a *authority) serverTLS() (*tls.Config, error) {
	return nil, errors.New("authority TLS: not built yet")
}
