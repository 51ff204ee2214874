package cluster

import (
	"context"
	"fmt"
	"log/slog"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger sends kind's messages to slog: its V(0) status lines at Info,
// higher verbosity at Debug.
type kindLogger struct{ l *slog.Logger }

var _ kindlog.Logger = kindLogger{}

func (k kindLogger) Warn(msg string)                  { k.l.Warn(msg, "from", "kind") }
func (k kindLogger) Warnf(f string, a ...interface{}) { k.l.Warn(fmt.Sprintf(f, a...), "from", "kind") }
func (k kindLogger) Error(msg string)                 { k.l.Error(msg, "from", "kind") }
func (k kindLogger) Errorf(f string, a ...interface{}) {
	k.l.Error(fmt.Sprintf(f, a...), "from", "kind")
}
func (k kindLogger) V(level kindlog.Level) kindlog.InfoLogger {
	lv := slog.LevelInfo
	if level > 0 {
		lv = slog.LevelDebug
	}
	return kindInfo{l: k.l, level: lv}
}

type kindInfo struct {
	l     *slog.Logger
	level slog.Level
}

func (k kindInfo) Info(msg string) { k.l.Log(context.Background(), k.level, msg, "from", "kind") }
func (k kindInfo) Infof(f string, a ...interface{}) {
	k.l.Log(context.Background(), k.level, fmt.Sprintf(f, a...), "from", "kind")
}
func (k kindInfo) Enabled() bool { return k.l.Enabled(context.Background(), k.level) }
