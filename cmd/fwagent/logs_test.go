package main

import (
	"strings"
	"testing"
	"time"
)

func TestLogsCommand(t *testing.T) {
	cfg := supportSite(t)
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"without filters every line is printed readably", nil,
			[]string{siteTime.Format(time.RFC3339) + " INFO  login", "release=r1 attempt=a1", "WARNING retry release=r2"}, nil},
		{"--release selects one release", []string{"--release", "r2"}, []string{"retry"}, []string{"login"}},
		{"--attempt selects one attempt", []string{"--attempt", "a1"}, []string{"login"}, []string{"retry"}},
		{"--since drops old lines", []string{"--since", "1h"}, nil, []string{"login", "retry"}},
		{"--json prints stored lines", []string{"--json", "--release", "r2"}, []string{`{"level":"warning"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runFwagent(t, append([]string{"--config", cfg, "logs"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestLogsRejectsABadSince(t *testing.T) {
	if _, _, code := runFwagent(t, "logs", "--log-dir", t.TempDir(), "--since", "yesterday"); code != exitUsage {
		t.Fatalf("exit %d; want %d", code, exitUsage)
	}
}
