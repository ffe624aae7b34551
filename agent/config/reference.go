//go:generate env FWAGENT_UPDATE_DOCS=1 go test -run ^TestReferenceIsUpToDate$ .

package config

import (
	"bytes"
	"fmt"
	"strings"
)

// ReferencePath is where the configuration reference is checked in,
// relative to the repository root.
const ReferencePath = "docs/reference/config.md"

// Reference renders the configuration reference (Markdown) from Keys: one
// table per section, each key with its type, default, bounds and doc.
// `go generate ./agent/config` writes it to ReferencePath (through
// TestReferenceIsUpToDate with FWAGENT_UPDATE_DOCS=1, like the CLI
// reference); the test fails when the checked-in file differs.
func Reference() []byte {
	var b bytes.Buffer
	b.WriteString(`<!-- Generated from agent/config/keys.go by "go generate ./agent/config"; DO NOT EDIT. -->

# Configuration reference

The agent reads one YAML file, ` + "`" + DefaultPath + "`" + ` unless ` + "`--config FILE`" + ` says
otherwise; [packaging/agent.example.yaml](../../packaging/agent.example.yaml) is an
annotated example with every key.

- The file is strict: an unknown key, a key written twice or a bad value stops
  the agent with an error naming the file, the line and the key.
- A key that is absent (or written without a value) takes its default. A value
  that is written is honoured, 0 included: ` + "`retry_max: 0`" + ` means one request,
  no retry.
- Relative paths are relative to the file's directory.
- Durations: ` + "`90s`, `30m`, `6h`, `7d`, `1d12h`" + `. Sizes: a number of bytes, or
  ` + "`500KB`, `1MB`, `1GB`" + ` (powers of 1000), ` + "`500KiB`, `1MiB`, `1GiB`" + ` (powers of 1024);
  bandwidths the same with ` + "`/s`" + `.
- Secrets (` + "`password`, `token`" + `) are best given by ` + "`*_file`" + ` (or ` + "`*_env`" + `); they never
  appear in logs, errors or support bundles.

How many requests a retried request kind makes at worst is in [retries.md](retries.md).
`)
	sec, first := "", true
	for _, k := range Keys {
		if k.Section() {
			continue
		}
		parent := ""
		if i := strings.LastIndex(k.Path, "."); i >= 0 {
			parent = k.Path[:i]
		}
		if first || parent != sec {
			sec, first = parent, false
			title, doc := "Top level", "keys at the top of the file"
			if parent != "" {
				title = "`" + parent + "`"
				doc = keySectionDoc(parent)
			}
			fmt.Fprintf(&b, "\n## %s\n\n%s.\n\n", title, upperFirst(doc))
			b.WriteString("| Key | Type | Default | Accepted | Description |\n|---|---|---|---|---|\n")
		}
		def := "—"
		if k.Default != "" {
			def = "`" + k.Default + "`"
		}
		bounds := k.Bounds
		if bounds == "" {
			bounds = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Path, k.Type, def, bounds, escapeCell(k.Doc))
	}
	b.WriteString("\n## `devices[]`\n\nOne entry of `devices:` (a site, see [site-gateway.md](../site-gateway.md)): the keys of `device:` plus a name and,\noptionally, the recorder's own rollout groups and maintenance windows. Entries must differ in name and url;\nat most one uses the local backend.\n\n")
	b.WriteString("| Key | Type | Default | Accepted | Description |\n|---|---|---|---|---|\n")
	for _, k := range DeviceKeys() {
		if k.Section() {
			continue
		}
		def := "—"
		if k.Default != "" {
			def = "`" + k.Default + "`"
		}
		bounds := k.Bounds
		if bounds == "" {
			bounds = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Path, k.Type, def, bounds, escapeCell(k.Doc))
	}
	return b.Bytes()
}

func keySectionDoc(path string) string {
	if k, ok := lookup(path); ok {
		return k.Doc
	}
	return ""
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func escapeCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
