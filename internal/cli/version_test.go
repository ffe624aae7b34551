package cli

import (
	"runtime"
	"strings"
	"testing"
)

func TestBuildStringUsesTheStampedValues(t *testing.T) {
	got := Build{Version: "1.2.3", Commit: "abc1234"}.String("fwctl")
	want := "fwctl 1.2.3 (commit abc1234, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBuildWithoutLdflagsFallsBackToBuildInfo(t *testing.T) {
	r := Build{}.Resolved()
	// A test binary's main module has no version and, without VCS stamping,
	// no revision: the fallbacks say so instead of printing nothing.
	if r.Version == "" || r.Commit == "" || strings.Contains(r.Version, " ") {
		t.Errorf("resolved %+v", r)
	}
}
