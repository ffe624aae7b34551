package cli

import (
	"os"
	"os/exec"
	"path/filepath"
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

// TestBinariesPrintTheStampedVersion builds the three commands with the
// -ldflags the docs give and runs --version on each.
func TestBinariesPrintTheStampedVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"-ldflags", "-X main.version=9.8.7 -X main.commit=abc1234", "./cmd/fwagent", "./cmd/fwctl", "./cmd/nvrsim")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, prog := range []string{"fwagent", "fwctl", "nvrsim"} {
		out, err := exec.Command(filepath.Join(dir, prog), "--version").Output()
		want := prog + " 9.8.7 (commit abc1234, "
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("%s --version: %v, printed %q, want it to start with %q", prog, err, out, want)
		}
	}
}
