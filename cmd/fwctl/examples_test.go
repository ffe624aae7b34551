package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpExamplesWorkWhenCopied checks the help examples against what the
// other commands really produce: a release id is the one fwctl release
// gives the 16S's custom 4.1.25 image, and key files are the ones the
// keygen example writes, as in the integrator workflow (examples/integrator.sh).
func TestHelpExamplesWorkWhenCopied(t *testing.T) {
	wantID := defaultReleaseID("iDS-9632NXI-I8/16S", "4.1.25")
	releaseFlag := regexp.MustCompile(`--release (\S+)`)
	keyFile := regexp.MustCompile(`--(?:key|pub) (\S+)`)
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		for _, m := range releaseFlag.FindAllStringSubmatch(c.Example, -1) {
			seen++
			if m[1] != wantID && !strings.HasSuffix(m[1], ".json") {
				t.Errorf("%s: example uses release id %q; fwctl release names it %q", c.CommandPath(), m[1], wantID)
			}
		}
		for _, m := range keyFile.FindAllStringSubmatch(c.Example, -1) {
			if !regexp.MustCompile(`^keys/release-[12]\.(key|pub)$`).MatchString(m[1]) {
				t.Errorf("%s: example uses key file %q; the keygen example writes keys/release-1.key and .pub", c.CommandPath(), m[1])
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd())
	if seen == 0 {
		t.Fatal("no example names a release: the test looks at nothing")
	}
}
