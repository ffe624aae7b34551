package httplog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestLeveledTurnsKeyValuesIntoFields(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.JSONFormatter{})
	lg := Leveled(l)
	lg.Debug("retrying request", "url", "http://x/m.json", "remaining", 3)
	lg.Error("odd", "lonely")
	out := buf.String()
	for _, want := range []string{`"url":"http://x/m.json"`, `"remaining":3`, `"msg":"retrying request"`, `"lonely":"(missing value)"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %s:\n%s", want, out)
		}
	}
}

func TestLeveledWithNilLoggerDiscards(t *testing.T) {
	lg := Leveled(nil)
	lg.Info("nothing happens", "k", "v")
	lg.Warn("nothing happens")
}
