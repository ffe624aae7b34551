// Package gendocs writes the man pages (docs/man) and the Markdown CLI
// reference (docs/reference/cli) of fwagent's commands from their cobra
// command trees, with github.com/spf13/cobra/doc, and checks in tests that
// the checked-in files are what the code generates. It knows nothing of what
// the commands do.
//
// Regenerate every page with:
//
//	go generate ./cmd/...
//
// (each command's main.go runs its TestGeneratedDocs with FWAGENT_UPDATE_DOCS=1).
package gendocs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// UpdateEnv names the environment variable that makes Test rewrite the
// checked-in pages instead of comparing them.
const UpdateEnv = "FWAGENT_UPDATE_DOCS"

// manDate is the date printed in every man page's header. It is fixed so
// that generating the pages twice gives the same bytes; it says when the
// page format was set, not when the binary was built.
var manDate = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

// Generate returns every page of root's tree: file name -> content, man
// pages under "man/" and Markdown under "cli/".
func Generate(root *cobra.Command) (map[string][]byte, error) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.InitDefaultVersionFlag()
	disableAutoGenTag(root)
	dir, err := os.MkdirTemp("", "gendocs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	manDir, mdDir := filepath.Join(dir, "man"), filepath.Join(dir, "cli")
	for _, d := range []string{manDir, mdDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	date := manDate
	header := &doc.GenManHeader{Title: strings.ToUpper(root.Name()), Section: "1", Date: &date,
		Source: "fwagent", Manual: "fwagent manual"}
	if err := doc.GenManTree(root, header, manDir); err != nil {
		return nil, fmt.Errorf("man pages of %s: %w", root.Name(), err)
	}
	if err := doc.GenMarkdownTree(root, mdDir); err != nil {
		return nil, fmt.Errorf("markdown reference of %s: %w", root.Name(), err)
	}
	pages := map[string][]byte{}
	for _, sub := range []string{"man", "cli"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				return nil, err
			}
			pages[sub+"/"+e.Name()] = b
		}
	}
	return pages, nil
}

func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, s := range c.Commands() {
		disableAutoGenTag(s)
	}
}

// ownedBy reports whether a page file belongs to the tool named prog:
// prog.1, prog-sub.1, prog.md, prog_sub.md.
func ownedBy(name, prog string) bool {
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".1"), ".md")
	return base == prog || strings.HasPrefix(base, prog+"-") || strings.HasPrefix(base, prog+"_")
}

// Test compares root's generated pages with those checked in under docsDir
// (docsDir/man and docsDir/reference/cli), and fails naming every page that
// differs, is missing or is stale. With FWAGENT_UPDATE_DOCS=1 it writes them
// instead.
func Test(t *testing.T, root *cobra.Command, docsDir string) {
	t.Helper()
	pages, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{"man": filepath.Join(docsDir, "man"), "cli": filepath.Join(docsDir, "reference", "cli")}
	update := os.Getenv(UpdateEnv) == "1"
	var problems []string
	for sub, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !ownedBy(e.Name(), root.Name()) {
				continue
			}
			if _, ok := pages[sub+"/"+e.Name()]; !ok {
				if update {
					if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
						t.Fatal(err)
					}
					continue
				}
				problems = append(problems, filepath.Join(dir, e.Name())+": stale (no such command any more)")
			}
		}
	}
	names := make([]string, 0, len(pages))
	for n := range pages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sub, file, _ := strings.Cut(n, "/")
		path := filepath.Join(dirs[sub], file)
		if update {
			if err := os.MkdirAll(dirs[sub], 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, pages[n], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		switch {
		case err != nil:
			problems = append(problems, path+": missing")
		case !bytes.Equal(have, pages[n]):
			problems = append(problems, path+": differs from what the code generates")
		}
	}
	if len(problems) > 0 {
		t.Errorf("the generated docs of %s are out of date; run `go generate ./cmd/...` and commit the result:\n  %s",
			root.Name(), strings.Join(problems, "\n  "))
	}
}

// TestExamples fails when a help example of root's tree names a command
// or flag that does not exist: each example line that starts with the
// tool's name (backslash continuations joined, comments and quotes
// dropped) must resolve to a command whose flags parse.
func TestExamples(t *testing.T, root *cobra.Command) {
	t.Helper()
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	seen := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, line := range commandLines(c.Example, root.Name()) {
			seen++
			if err := parseLine(root, line); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), line, err)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if seen == 0 {
		t.Errorf("%s: no help example found", root.Name())
	}
}

// TestDocCommands fails when a command line of root's tool in a code block
// of README.md or docs/ (under repoRoot) names a command or flag that does
// not exist. Lines with shell variables or placeholders in capitals
// (FILE, ID) are parsed too: flags are checked, not values.
func TestDocCommands(t *testing.T, root *cobra.Command, repoRoot string) {
	t.Helper()
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	docs := []string{filepath.Join(repoRoot, "README.md")}
	_ = filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") && !strings.Contains(path, filepath.Join("reference", "cli")) {
			docs = append(docs, path)
		}
		return nil
	})
	seen := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range shellBlocks(string(b)) {
			for _, line := range commandLines(block, root.Name()) {
				seen++
				if err := parseLine(root, line); err != nil {
					t.Errorf("%s: %q: %v", doc, line, err)
				}
			}
		}
	}
	if seen == 0 {
		t.Errorf("no command line of %s found in the docs", root.Name())
	}
}

// shellBlocks returns the fenced code blocks of a Markdown text whose
// language is sh, bash, console or not given.
func shellBlocks(text string) []string {
	var blocks []string
	var cur *strings.Builder
	skip := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &strings.Builder{}
			switch strings.TrimPrefix(trimmed, "```") {
			case "", "sh", "bash", "console":
				skip = false
			default:
				skip = true
			}
		case cur != nil && trimmed == "```":
			if !skip {
				blocks = append(blocks, cur.String())
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// commandLines returns the lines of text that run tool: continuations
// joined, a "$ " prompt, comments, quotes and redirections dropped.
func commandLines(text, tool string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "$ ")
		line, _, _ = strings.Cut(line, " #")
		for _, sep := range []string{" > ", " 2> ", " | ", " && ", " || ", " 2>&1", " > /dev/null"} {
			line, _, _ = strings.Cut(line, sep)
		}
		line = strings.NewReplacer(`"`, "", `'`, "").Replace(line)
		if f := strings.Fields(line); len(f) > 0 && f[0] == tool {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// parseLine resolves a command line to its command and parses its flags.
func parseLine(root *cobra.Command, line string) error {
	args := strings.Fields(line)[1:]
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if cmd.HasSubCommands() && !cmd.Runnable() {
		return fmt.Errorf("names no runnable command")
	}
	defer cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			_ = f.Value.Set(f.DefValue)
			f.Changed = false
		}
	})
	return cmd.ParseFlags(rest)
}
