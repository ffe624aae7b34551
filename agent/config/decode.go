package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize caps the configuration file; a larger file is refused.
const MaxFileSize = 1 << 20

// Parse decodes a configuration from YAML, applies defaults and validates
// it. name is used in error messages (usually the file name). Parse reads no
// files and no environment: secrets in *_file / *_env keys are resolved by
// Load, and relative paths stay relative.
func Parse(data []byte, name string) (*Config, error) {
	c := Default()
	c.file = name
	c.lines = map[string]int{}
	p := &problems{file: name, lines: c.lines}
	if len(data) > MaxFileSize {
		p.add(0, "", fmt.Sprintf("file is %d bytes, more than the %d allowed: is this the right file?", len(data), MaxFileSize))
		return nil, p.err()
	}
	root, err := parseNode(data)
	if err != nil {
		p.add(yamlErrLine(err), "", fmt.Sprintf("not valid YAML: %s", yamlErrMsg(err)))
		return nil, p.err()
	}
	d := &decoder{p: p}
	if root != nil {
		d.section(root, "", c)
	}
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	c.normalize()
	c.validate(p)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	return c, nil
}

// parseNode parses exactly one YAML document and returns its root node, or
// nil for an empty document.
func parseNode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: a second YAML document (after ---) is not allowed: keep one document per file", extra.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	m := yamlLineRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func yamlErrMsg(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = yamlLineRe.ReplaceAllString(s, "")
	s = strings.TrimLeft(s, " :")
	return s
}

// decoder walks the YAML node tree against Keys.
type decoder struct {
	p *problems
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	d.p.add(n.Line, key, fmt.Sprintf(format, args...))
}

// section decodes the mapping of the section at path ("" for the top
// level): every key must be defined in Keys, each is written once, and its
// line is recorded. A null value (key written without one) is as if absent.
func (d *decoder) section(n *yaml.Node, path string, c *Config) {
	d.sectionAs(n, path, path, c)
}

// sectionAs is section for a mapping whose keys are defined under path but
// written in the file under display (an entry of devices: is decoded
// against the device.* keys and named devices[N].*).
func (d *decoder) sectionAs(n *yaml.Node, path, display string, c *Config) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, display, "expected a mapping of keys, got %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			d.fail(kn, path, "keys must be plain words, got %s", describe(kn))
			continue
		}
		def, key := join(path, kn.Value), join(display, kn.Value)
		if seen[kn.Value] {
			d.fail(kn, key, "written twice: keep one")
			continue
		}
		seen[kn.Value] = true
		d.p.lines[key] = kn.Line
		k, ok := lookup(def)
		if !ok {
			d.fail(kn, key, "unknown key%s", suggest(kn.Value, keyChildren[path]))
			continue
		}
		switch {
		case k.Section():
			d.sectionAs(vn, def, key, c)
		case isNull(vn):
		default:
			k.decode(d, vn, key, c)
		}
	}
}

// suggest proposes the known key closest to an unknown one.
func suggest(k string, names []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	for _, name := range names {
		if norm(name) == norm(k) {
			return fmt.Sprintf(" (did you mean %s?)", name)
		}
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	return fmt.Sprintf(" (known keys here: %s)", strings.Join(sorted, ", "))
}

func (d *decoder) strList(n *yaml.Node, key string) []string {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, "expected a list (like [a, b] or one '- item' per line), got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		c = resolve(c)
		k := fmt.Sprintf("%s[%d]", key, i)
		d.p.lines[k] = c.Line
		if c.Kind != yaml.ScalarNode || isNull(c) {
			d.fail(c, k, "expected a text value, got %s", describe(c))
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

func (d *decoder) windows(n *yaml.Node, key string) []Window {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, `expected a list of windows like ["Sat 02:00-04:00"], got %s`, describe(n))
		return nil
	}
	out := make([]Window, 0, len(n.Content))
	for i, c := range n.Content {
		c = resolve(c)
		k := fmt.Sprintf("%s[%d]", key, i)
		d.p.lines[k] = c.Line
		if c.Kind != yaml.ScalarNode {
			d.fail(c, k, `expected a window like "Sat 02:00-04:00", got %s`, describe(c))
			continue
		}
		w, err := ParseWindow(c.Value)
		if err != nil {
			d.fail(c, k, "%v", err)
			continue
		}
		out = append(out, w)
	}
	return out
}

func (d *decoder) pins(n *yaml.Node, key string) map[string][]string {
	if n.Kind != yaml.MappingNode {
		d.fail(n, key, "expected a mapping of model to digests, got %s", describe(n))
		return nil
	}
	out := map[string][]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode || strings.TrimSpace(kn.Value) == "" {
			d.fail(kn, key, "expected a model name, got %s", describe(kn))
			continue
		}
		model := strings.TrimSpace(kn.Value)
		k := key + "." + model
		d.p.lines[k] = kn.Line
		if _, dup := out[model]; dup {
			d.fail(kn, k, "written twice: keep one")
			continue
		}
		var digests []string
		if !isNull(vn) {
			digests = d.strList(vn, k)
		}
		out[model] = digests
	}
	return out
}

var daysRe = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseDuration parses a Go duration ("90s", "1h30m") that may start with a
// whole number of days ("7d", "1d12h"). Negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration (use e.g. 6h, 30m, 90s or 7d)", s)
	if t == "" {
		return 0, bad
	}
	if t == "0" {
		return 0, nil
	}
	var days int64
	if m := daysRe.FindStringSubmatch(t); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, bad
		}
		days, t = n, m[2]
		if t == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, bad
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative: durations must be zero or more", s)
	}
	total := time.Duration(days)*24*time.Hour + v
	if total < v {
		return 0, fmt.Errorf("%q is too long", s)
	}
	return total, nil
}

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$`)

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "tib": 1 << 40,
}

// ParseSize parses a byte count: a plain number of bytes or a number with a
// unit (KB, MB, GB are powers of 1000; KiB, MiB, GiB powers of 1024). With
// perSecond, a trailing "/s" is accepted (bandwidths like "2MB/s").
func ParseSize(s string, perSecond bool) (int64, error) {
	t := strings.TrimSpace(s)
	example := "e.g. 1MiB, 500KB or a number of bytes"
	if perSecond {
		example = "e.g. 2MB/s, 500KiB/s or a number of bytes per second"
		t = strings.TrimSuffix(t, "/s")
	}
	bad := fmt.Errorf("%q is not a size (use %s)", s, example)
	m := sizeRe.FindStringSubmatch(t)
	if m == nil {
		return 0, bad
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, bad
	}
	num, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, bad
	}
	v := num * unit
	if v >= math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if num > 0 && int64(v) == 0 {
		// Rounding it to 0 would silently mean "unlimited" for a bandwidth.
		return 0, fmt.Errorf("%q is less than one byte: use at least 1 (or 0 where 0 is allowed)", s)
	}
	return int64(v), nil
}
