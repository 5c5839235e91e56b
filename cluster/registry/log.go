package registry

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"sort"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/sirupsen/logrus"
)

// distribution logs through logrus entries that it finds in the context
// (internal/dcontext), falling back to one process-wide logrus logger. To keep
// every Registry's logging its own without touching that global, each
// Registry has a private logrus.Logger whose only output is a hook into the
// Registry's slog.Logger, and the contexts handed to distribution (the App's,
// each request's, Collect's) answer dcontext's logger lookup with it.
//
// dcontext's key is an unexported type in an internal package, so it is
// recognised by name; TestDistributionLogsReachSlog fails if a new
// distribution version renames it.
const (
	dcontextPkg       = "github.com/distribution/distribution/v3/internal/dcontext"
	dcontextLoggerKey = "loggerKey"
)

// logContext answers distribution's logger lookup with entry and defers every
// other lookup to the wrapped context.
type logContext struct {
	context.Context
	entry *logrus.Entry
}

// Value implements context.Context.
func (c logContext) Value(key any) any {
	if t := reflect.TypeOf(key); t != nil && t.Name() == dcontextLoggerKey && t.PkgPath() == dcontextPkg {
		return c.entry
	}
	return c.Context.Value(key)
}

// newLogrusEntry returns a logrus entry that writes nothing itself and hands
// every record to log. Its level is the most verbose one log would keep, so
// distribution does not build records that are thrown away.
func newLogrusEntry(log *slog.Logger) *logrus.Entry {
	l := logrus.New()
	l.Out = io.Discard
	l.Formatter = discardFormatter{}
	l.Level = logrus.ErrorLevel
	for _, lv := range []logrus.Level{logrus.TraceLevel, logrus.DebugLevel, logrus.InfoLevel, logrus.WarnLevel} {
		if log.Enabled(context.Background(), slogLevel(lv)) {
			l.Level = lv
			break
		}
	}
	l.AddHook(slogHook{log: log})
	return logrus.NewEntry(l)
}

// slogLevel maps distribution's levels onto berth's. distribution logs a line
// at Info for every request it answers, which is Debug for berth.
func slogLevel(l logrus.Level) slog.Level {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		return slog.LevelError
	case logrus.WarnLevel:
		return slog.LevelWarn
	case logrus.InfoLevel:
		return slog.LevelDebug
	default:
		return slog.LevelDebug - 4
	}
}

type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	lvl := slogLevel(e.Level)
	// distribution logs every error response at Error, including the 404s
	// that every push gets when it asks whether a layer is already there.
	// A client's mistake is not the server's error.
	if c, ok := e.Data["err.code"].(errcode.ErrorCode); ok && c.Descriptor().HTTPStatusCode < 500 {
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	if !h.log.Enabled(ctx, lvl) {
		return nil
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, e.Data[k]))
	}
	h.log.LogAttrs(ctx, lvl, e.Message, attrs...)
	return nil
}
