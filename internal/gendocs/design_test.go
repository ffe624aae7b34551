package gendocs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/fwagent/fwagent/"

// modulePackages maps each package of the module (relative path) to the
// module packages it imports.
func modulePackages(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		p := strings.TrimPrefix(f[0], module)
		pkgs[p] = nil
		for _, imp := range f[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				pkgs[p] = append(pkgs[p], rel)
			}
		}
	}
	return pkgs
}

// braces expands "agent/{config,journal}" into agent/config agent/journal.
var braces = regexp.MustCompile(`([a-z/]+)/\{([a-z,]+)\}`)

// TestDesignMapNamesEveryPackage keeps docs/design.md's package map and the
// code in step, and checks that dependencies point one way.
func TestDesignMapNamesEveryPackage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "```\n")
	diagram, _, _ := strings.Cut(rest, "```")
	diagram = braces.ReplaceAllStringFunc(diagram, func(m string) string {
		g := braces.FindStringSubmatch(m)
		var out []string
		for _, p := range strings.Split(g[2], ",") {
			out = append(out, g[1]+"/"+p)
		}
		return strings.Join(out, " ")
	})
	pkgs := modulePackages(t)
	named := map[string]bool{}
	for _, w := range regexp.MustCompile(`[a-z][a-z0-9/]*(\.[a-z]+)?`).FindAllString(diagram, -1) {
		if strings.Contains(w, ".") {
			continue // a file name such as docs/reference/codes.md
		}
		if _, ok := pkgs[w]; ok {
			named[w] = true
		} else if strings.Contains(w, "/") {
			t.Errorf("docs/design.md names %s, which is not a package of the module", w)
		}
	}
	for p := range pkgs {
		if !named[p] {
			t.Errorf("docs/design.md's package map does not name %s", p)
		}
	}
	top := func(p string) string { first, _, _ := strings.Cut(p, "/"); return first }
	for p, imps := range pkgs {
		for _, imp := range imps {
			switch {
			case top(imp) == "cmd":
				t.Errorf("%s imports %s: nothing imports a command", p, imp)
			case (top(p) == "verify" || top(p) == "manifest" || top(p) == "device") && top(imp) == "agent":
				t.Errorf("%s imports %s: verify, manifest and device know nothing of the agent", p, imp)
			case top(p) == "agent" && top(imp) == "fleet" && imp != "fleet":
				// The agent speaks the protocol (package fleet), never
				// the server's side (fleet/server, the stores).
				t.Errorf("%s imports %s: the agent does not depend on the fleet server", p, imp)
			}
		}
	}
}
