package gendocs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	fence   = regexp.MustCompile("(?ms)^```.*?^```")
)

// slug is GitHub's anchor for a heading: lowercase, punctuation dropped,
// spaces to dashes.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the anchors of a Markdown file's headings.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(text, ""), -1) {
		s := slug(m[1])
		for i := 0; ; i++ {
			a := s
			if i > 0 {
				a += "-" + string(rune('0'+i))
			}
			if !out[a] {
				out[a] = true
				break
			}
		}
	}
	return out
}

// TestDocsLinksResolve fails on a relative link in README.md or docs/ to a
// file that does not exist, or to a heading that does not exist.
func TestDocsLinksResolve(t *testing.T) {
	root := "../.."
	for _, doc := range markdownFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := fence.ReplaceAllString(string(b), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join(root, doc)
			if file != "" {
				path = filepath.Join(filepath.Dir(path), file)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				if fi, serr := os.Stat(path); serr == nil && fi.IsDir() && anchor == "" {
					continue
				}
				t.Errorf("%s: link %s: %s does not exist", doc, target, path)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !anchors(string(data))[anchor] {
				t.Errorf("%s: link %s: no heading with anchor #%s in %s", doc, target, anchor, path)
			}
		}
	}
}
