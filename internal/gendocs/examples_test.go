package gendocs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A docs code block that shows an example script verbatim is marked with a
// comment naming the script on the line before it:
//
//	<!-- example: examples/quickstart.sh -->
//	```bash
//	...the script, exactly...
//	```
var exampleBlock = regexp.MustCompile("(?s)<!-- example: (\\S+) -->\n```bash\n(.*?)```\n")

// markdownFiles lists README.md and every Markdown file under docs/,
// relative to the repository root.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDocsShowTheExamplesVerbatim fails when a marked code block in the docs
// differs from the script it names, or when a script under examples/ is
// shown nowhere. CI runs the scripts (.ci/run), so the docs show commands
// that work. FWAGENT_UPDATE_DOCS=1 rewrites the blocks from the scripts.
func TestDocsShowTheExamplesVerbatim(t *testing.T) {
	root := "../.."
	shown := map[string]bool{}
	for _, doc := range markdownFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		changed := false
		text = exampleBlock.ReplaceAllStringFunc(text, func(block string) string {
			m := exampleBlock.FindStringSubmatch(block)
			script, err := os.ReadFile(filepath.Join(root, m[1]))
			if err != nil {
				t.Errorf("%s: the block names %s, which cannot be read: %v", doc, m[1], err)
				return block
			}
			shown[m[1]] = true
			if m[2] == string(script) {
				return block
			}
			if os.Getenv(UpdateEnv) == "1" {
				changed = true
				return "<!-- example: " + m[1] + " -->\n```bash\n" + string(script) + "```\n"
			}
			t.Errorf("%s: the code block marked %s differs from that script; run FWAGENT_UPDATE_DOCS=1 go test ./internal/gendocs", doc, m[1])
			return block
		})
		if changed {
			if err := os.WriteFile(filepath.Join(root, doc), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	scripts, err := filepath.Glob(filepath.Join(root, "examples", "*.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scripts {
		rel, _ := filepath.Rel(root, s)
		if filepath.Base(s) != "lib.sh" && !shown[rel] {
			t.Errorf("%s is shown in no doc: mark a code block with <!-- example: %s -->", rel, rel)
		}
	}
}
