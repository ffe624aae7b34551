package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// yamlPaths lists the dotted yaml paths of t's fields: sections (nested
// structs) and leaves (everything else), skipping fields tagged "-".
func yamlPaths(t reflect.Type, prefix string, sections, leaves *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			continue
		}
		path := join(prefix, name)
		if f.Type.Kind() == reflect.Struct && f.Type.Name() != "Window" {
			*sections = append(*sections, path)
			yamlPaths(f.Type, path, sections, leaves)
			continue
		}
		*leaves = append(*leaves, path)
	}
}

func TestEveryConfigFieldHasOneKey(t *testing.T) {
	var sections, leaves []string
	yamlPaths(reflect.TypeOf(Config{}), "", &sections, &leaves)
	var keySections, keyLeaves []string
	seen := map[string]bool{}
	for _, k := range Keys {
		if seen[k.Path] {
			t.Errorf("%s is defined twice in Keys", k.Path)
		}
		seen[k.Path] = true
		if k.Section() {
			keySections = append(keySections, k.Path)
			continue
		}
		keyLeaves = append(keyLeaves, k.Path)
		if k.Doc == "" || k.decode == nil || k.apply == nil {
			t.Errorf("%s lacks a doc, a decoder or a default", k.Path)
		}
	}
	for _, s := range [][]string{sections, leaves, keySections, keyLeaves} {
		sort.Strings(s)
	}
	if !reflect.DeepEqual(sections, keySections) {
		t.Errorf("sections of Config:\n  %v\nsections in Keys:\n  %v", sections, keySections)
	}
	if !reflect.DeepEqual(leaves, keyLeaves) {
		t.Errorf("fields of Config:\n  %v\nkeys in Keys:\n  %v", leaves, keyLeaves)
	}
}

// The default a key documents is the default it applies: writing the
// documented default explicitly changes nothing.
func TestDocumentedDefaultsAreTheAppliedOnes(t *testing.T) {
	for _, k := range Keys {
		if k.Section() || k.Default == "" {
			continue
		}
		t.Run(k.Path, func(t *testing.T) {
			parts := strings.Split(k.Path, ".")
			var b strings.Builder
			for i, p := range parts {
				b.WriteString(strings.Repeat("  ", i) + p + ":")
				if i < len(parts)-1 {
					b.WriteString("\n")
				}
			}
			b.WriteString(" " + quoteYAML(k.Default) + "\n")
			c := Default()
			d := &decoder{p: &problems{file: "t.yaml", lines: map[string]int{}}}
			root, err := parseNode([]byte(b.String()))
			if err != nil {
				t.Fatal(err)
			}
			d.section(root, "", c)
			if err := d.p.err(); err != nil {
				t.Fatalf("the documented default %q does not parse: %v", k.Default, err)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("writing %s: %s gives a configuration other than the default", k.Path, k.Default)
			}
		})
	}
}

func quoteYAML(s string) string {
	if strings.ContainsAny(s, ":/ ") {
		return `"` + s + `"`
	}
	return s
}

func TestExplicitZeroIsHonouredAndNegativesRefused(t *testing.T) {
	c, err := Parse([]byte(minimal+"    retry_max: 0\ndownload:\n  retry_max: 0\n  bandwidth_limit: 0\nmanifest:\n  retry_max: 0\nreport:\n  retry_max: 0\nlog:\n  max_backups: 0\n"), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]int{"device.isapi.retry_max": c.Device.ISAPI.RetryMax, "download.retry_max": c.Download.RetryMax,
		"manifest.retry_max": c.Manifest.RetryMax, "report.retry_max": c.Report.RetryMax, "log.max_backups": c.Log.MaxBackups} {
		if got != 0 {
			t.Errorf("%s: 0 written, %d kept", name, got)
		}
	}
	if d := Default(); d.Device.ISAPI.RetryMax == 0 || d.Download.RetryMax == 0 {
		t.Fatal("the defaults of retry_max are 0: the test proves nothing")
	}
	for _, tc := range []struct{ yaml, want string }{
		{minimal + "    retry_max: -1\n", "agent.yaml:8: device.isapi.retry_max: -1 is too small (at least 0)"},
		{minimal + "download:\n  retry_max: -2\n", "agent.yaml:9: download.retry_max: -2 is too small (at least 0)"},
		{minimal + "retry:\n  wait_min: 0s\n", "agent.yaml:9: retry.wait_min: must be more than zero"},
		{minimal + "retry:\n  wait_min: 2s\n  wait_max: 1s\n", "agent.yaml:10: retry.wait_max: 1s is shorter than retry.wait_min"},
	} {
		if _, err := Parse([]byte(tc.yaml), "agent.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse = %v; want an error containing %q", err, tc.want)
		}
	}
}

func TestReferenceIsUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", ReferencePath)
	if os.Getenv("FWAGENT_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, Reference(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: generate it with: go generate ./agent/config", err)
	}
	if !bytes.Equal(got, Reference()) {
		t.Fatalf("%s differs from what agent/config/keys.go generates: run go generate ./agent/config and commit the result", ReferencePath)
	}
	for _, k := range Keys {
		if !k.Section() && !bytes.Contains(got, []byte("`"+k.Path+"`")) {
			t.Errorf("the reference lacks %s", k.Path)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "90s", "7d", "1d12h", "-5m", "99999999999999999999d", "1.5h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %s, a negative duration", s, d)
		}
		// The reference writes defaults with formatDuration: they parse back.
		if back, err := ParseDuration(formatDuration(d)); err != nil || back != d {
			t.Fatalf("formatDuration(%s) = %q parses back as %s, %v", d, formatDuration(d), back, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "123", "1KB", "1kib", "2MB/s", "1.5MiB", "0.4", "9e99", "1 GiB", "-1"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, perSecond bool) {
		n, err := ParseSize(s, perSecond)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, a negative size", s, n)
		}
		if back, err := ParseSize(formatSize(n), false); err != nil || back != n {
			t.Fatalf("formatSize(%d) = %q parses back as %d, %v", n, formatSize(n), back, err)
		}
	})
}
