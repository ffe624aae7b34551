package main

import (
	"strings"
	"testing"
)

func TestDemoRunsAWholeUpdateAgainstTheSimulator(t *testing.T) {
	stdout, stderr, code := runFwagent(t, "demo", "--image-mb", "1", "--flash-seconds", "0")
	if code != exitOK {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"standard_firmware_forbidden", "installed and confirmed", "bricked false", "demo passed",
		"== hall ==", "== yard ==", "== gate ==", "site: 3 recorders: 3 installed", "image downloads from the update server: 2"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDemoRejectsABadImageSize(t *testing.T) {
	if _, _, code := runFwagent(t, "demo", "--image-mb", "0"); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
}
