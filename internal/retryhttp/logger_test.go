package retryhttp

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"
)

func TestFields(t *testing.T) {
	tests := []struct {
		name string
		kv   []interface{}
		want logrus.Fields
	}{
		{"pairs become fields", []interface{}{"method", "GET", "remaining", 2}, logrus.Fields{"method": "GET", "remaining": 2}},
		{"errors become their message", []interface{}{"error", errors.New("boom")}, logrus.Fields{"error": "boom"}},
		{"a dangling key is marked missing", []interface{}{"url"}, logrus.Fields{"url": "(missing)"}},
		{"secret keys are redacted", []interface{}{"Authorization", "Digest x", "password", "p"}, logrus.Fields{"Authorization": "[redacted]", "password": "[redacted]"}},
		{"a non-string key is formatted", []interface{}{7, "x"}, logrus.Fields{"7": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fields(tt.kv)
			if len(got) != len(tt.want) {
				t.Fatalf("Fields(%v) = %v, want %v", tt.kv, got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("field %q = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestLoggerWorksAsRetryablehttpLogger(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	c := retryablehttp.NewClient()
	c.Logger = LoggerFor(l)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(buf.String(), "performing request") {
		t.Errorf("log = %q, want the request logged", buf.String())
	}
	if LoggerFor(nil) != nil {
		t.Error("LoggerFor(nil) must be an untyped nil")
	}
}
