package testimage_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
)

// productPackages are fwagent's deciding code: none of it may know the
// simulator's identity entry, which real images do not carry.
var productPackages = []string{"agent", "verify", "manifest", "device"}

// The fwagent.id entry is the test device's own knowledge: the agent,
// verify, manifest and the device backends never import this package or
// the simulator, and no line of theirs names the entry. A real digicap.dav
// carries no variant, so a policy that read it would be proven only in
// tests.
func TestTheAgentNeverReadsTheIdentityEntry(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	for _, p := range productPackages {
		args = append(args, "./"+p+"/...")
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasSuffix(dep, "/internal/testimage") || strings.HasSuffix(dep, "/internal/nvrsim") || strings.HasSuffix(dep, "/internal/lab") {
			t.Errorf("fwagent's deciding code depends on %s", dep)
		}
	}
	for _, p := range productPackages {
		err := filepath.WalkDir(filepath.Join(root, p), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(testimage.IdentityEntry)) {
				t.Errorf("%s names the simulator's %s entry", path, testimage.IdentityEntry)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
