// Package httplog adapts a logrus logger to go-retryablehttp's LeveledLogger.
//
// It owns only that adapter: it must not configure logging (levels, outputs,
// formats), which belongs to agent/support.
package httplog

import (
	"fmt"
	"net/url"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/redact"
)

// Leveled returns a retryablehttp.LeveledLogger that writes to l, turning
// retryablehttp's key/value pairs into logrus fields. A nil l yields a
// logger that discards everything.
func Leveled(l logrus.FieldLogger) retryablehttp.LeveledLogger {
	return leveled{l: l}
}

type leveled struct{ l logrus.FieldLogger }

var _ retryablehttp.LeveledLogger = leveled{}

func (a leveled) entry(kv []interface{}) logrus.FieldLogger {
	if len(kv) == 0 {
		return a.l
	}
	f := make(logrus.Fields, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		key := fmt.Sprint(kv[i])
		if i+1 < len(kv) {
			f[key] = safeValue(key, kv[i+1])
		} else {
			f[key] = "(missing value)"
		}
	}
	return a.l.WithFields(f)
}

// safeValue renders URLs without their user information (retryablehttp
// hides the password only); other values pass unchanged.
func safeValue(key string, v interface{}) interface{} {
	switch v := v.(type) {
	case *url.URL:
		if v != nil {
			return redact.URL(v.String())
		}
	case string:
		if key == "url" {
			return redact.URL(v)
		}
	}
	return v
}

// Error logs msg at error level.
func (a leveled) Error(msg string, kv ...interface{}) {
	if a.l != nil {
		a.entry(kv).Error(msg)
	}
}

// Warn logs msg at warning level.
func (a leveled) Warn(msg string, kv ...interface{}) {
	if a.l != nil {
		a.entry(kv).Warn(msg)
	}
}

// Info logs msg at info level.
func (a leveled) Info(msg string, kv ...interface{}) {
	if a.l != nil {
		a.entry(kv).Info(msg)
	}
}

// Debug logs msg at debug level.
func (a leveled) Debug(msg string, kv ...interface{}) {
	if a.l != nil {
		a.entry(kv).Debug(msg)
	}
}
