// Package retryhttp adapts logrus to go-retryablehttp's LeveledLogger so
// every package that sends HTTP requests through go-retryablehttp logs in the
// agent's format. It owns nothing else: it must not build clients, decide
// retry policies or see credentials.
package retryhttp

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"
)

// Logger is a retryablehttp.LeveledLogger writing to a logrus logger. The
// key/value pairs of go-retryablehttp become logrus fields; values under keys
// that look like secrets are replaced by "[redacted]".
type Logger struct {
	Log logrus.FieldLogger
}

var _ retryablehttp.LeveledLogger = (*Logger)(nil)

// LoggerFor returns a value for retryablehttp.Client.Logger: the adapter for
// l, or an untyped nil (which turns go-retryablehttp's logging off) when l is
// nil.
func LoggerFor(l logrus.FieldLogger) interface{} {
	if l == nil {
		return nil
	}
	return &Logger{Log: l}
}

// Error logs msg at error level.
func (l *Logger) Error(msg string, keysAndValues ...interface{}) {
	l.entry(keysAndValues).Error(msg)
}

// Warn logs msg at warning level.
func (l *Logger) Warn(msg string, keysAndValues ...interface{}) {
	l.entry(keysAndValues).Warn(msg)
}

// Info logs msg at info level.
func (l *Logger) Info(msg string, keysAndValues ...interface{}) {
	l.entry(keysAndValues).Info(msg)
}

// Debug logs msg at debug level.
func (l *Logger) Debug(msg string, keysAndValues ...interface{}) {
	l.entry(keysAndValues).Debug(msg)
}

func (l *Logger) entry(kv []interface{}) logrus.FieldLogger {
	return l.Log.WithFields(Fields(kv))
}

// Fields turns go-retryablehttp's alternating key/value list into logrus
// fields. A key that is not a string is formatted with %v; a trailing key
// without a value gets "(missing)"; errors become their message.
func Fields(kv []interface{}) logrus.Fields {
	f := make(logrus.Fields, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprintf("%v", kv[i])
		}
		if i+1 >= len(kv) {
			f[key] = "(missing)"
			break
		}
		v := kv[i+1]
		if secretKey(key) {
			v = "[redacted]"
		} else if err, ok := v.(error); ok {
			v = err.Error()
		}
		f[key] = v
	}
	return f
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"authorization", "password", "passwd", "secret", "token", "cookie"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
