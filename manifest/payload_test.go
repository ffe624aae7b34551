package manifest

import (
	"strings"
	"testing"
)

func TestParsePayload(t *testing.T) {
	edit := func(fn func(m map[string]any)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			m := payloadMap()
			fn(m)
			return mustJSON(t, m)
		}
	}
	rel := func(fn func(r map[string]any)) func(t *testing.T) []byte {
		return edit(func(m map[string]any) { fn(release0(m)) })
	}
	img := func(fn func(i map[string]any)) func(t *testing.T) []byte {
		return rel(func(r map[string]any) { fn(r["image"].(map[string]any)) })
	}
	ro := func(fn func(o map[string]any)) func(t *testing.T) []byte {
		return rel(func(r map[string]any) { fn(r["rollout"].(map[string]any)) })
	}
	raw := func(s string) func(t *testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }
	valid := func(t *testing.T) []byte { return validPayload(t) }
	replace := func(old, new string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			s := string(validPayload(t))
			if !strings.Contains(s, old) {
				t.Fatalf("%q not in payload", old)
			}
			return []byte(strings.Replace(s, old, new, 1))
		}
	}
	tests := []struct {
		name string
		in   func(t *testing.T) []byte
		want Code
	}{
		{"a complete manifest parses", valid, ""},
		{"a manifest without releases but with an empty list parses", edit(func(m map[string]any) { m["releases"] = []any{} }), ""},
		{"a release without optional fields parses", rel(func(r map[string]any) {
			for _, k := range []string{"build", "requires", "terms_url", "notes", "rollout"} {
				delete(r, k)
			}
		}), ""},
		{"a version with a matching build parses", rel(func(r map[string]any) { r["version"] = "V4.1.25 build 200316" }), ""},
		{"trailing data is malformed", func(t *testing.T) []byte { return append(validPayload(t), []byte(" {}")...) }, CodeMalformed},
		{"trailing garbage is malformed", func(t *testing.T) []byte { return append(validPayload(t), 'x') }, CodeMalformed},
		{"a duplicate top-level key is malformed", replace(`"serial":7`, `"serial":7,"serial":8`), CodeMalformed},
		{"a duplicate nested key is malformed", replace(`"size":1048576`, `"size":1048576,"size":1`), CodeMalformed},
		{"an unknown field is malformed", edit(func(m map[string]any) { m["comment"] = "x" }), CodeMalformed},
		{"an unknown nested field is malformed", img(func(i map[string]any) { i["md5"] = "x" }), CodeMalformed},
		{"a key in another case is malformed", replace(`"serial":7`, `"Serial":7`), CodeMalformed},
		{"a key matching by unicode folding is malformed", replace(`"serial":7`, `"ſerial":7`), CodeMalformed},
		{"a JSON array is malformed", raw(`[1]`), CodeMalformed},
		{"an empty document is malformed", raw(``), CodeMalformed},
		{"truncated JSON is malformed", raw(`{"schema":1,`), CodeMalformed},
		{"a payload above 1 MiB is too large", raw(`{"notes":"` + strings.Repeat("x", MaxPayloadSize) + `"}`), CodeTooLarge},
		{"a missing schema is malformed", edit(func(m map[string]any) { delete(m, "schema") }), CodeMalformed},
		{"schema 2 is unsupported", edit(func(m map[string]any) { m["schema"] = 2 }), CodeUnsupportedSchema},
		{"schema 1.0 is unsupported", replace(`"schema":1`, `"schema":1.0`), CodeUnsupportedSchema},
		{"a zero serial is malformed", edit(func(m map[string]any) { m["serial"] = 0 }), CodeMalformed},
		{"a negative serial is malformed", edit(func(m map[string]any) { m["serial"] = -1 }), CodeMalformed},
		{"a fractional serial is malformed", edit(func(m map[string]any) { m["serial"] = 1.5 }), CodeMalformed},
		{"a missing issued is malformed", edit(func(m map[string]any) { delete(m, "issued") }), CodeMalformed},
		{"a non RFC 3339 issued is malformed", edit(func(m map[string]any) { m["issued"] = "2026-12-01 00:00" }), CodeMalformed},
		{"expires before issued is malformed", edit(func(m map[string]any) { m["expires"] = "2026-11-01T00:00:00Z" }), CodeMalformed},
		{"missing releases is malformed", edit(func(m map[string]any) { delete(m, "releases") }), CodeMalformed},
		{"a duplicate release id is malformed", edit(func(m map[string]any) {
			rs := m["releases"].([]any)
			m["releases"] = append(rs, rs[0])
		}), CodeMalformed},
		{"an empty release id is malformed", rel(func(r map[string]any) { r["id"] = "" }), CodeMalformed},
		{"a release id with a slash is malformed", rel(func(r map[string]any) { r["id"] = "a/b" }), CodeMalformed},
		{"empty models are malformed", rel(func(r map[string]any) { r["models"] = []any{} }), CodeMalformed},
		{"an empty model is malformed", rel(func(r map[string]any) { r["models"] = []any{""} }), CodeMalformed},
		{"a model with spaces around it is malformed", rel(func(r map[string]any) { r["models"] = []any{" iDS-9632NXI-I8/16S"} }), CodeMalformed},
		{"a model listed twice is malformed", rel(func(r map[string]any) { r["models"] = []any{"iDS-9632NXI-I8/16S", "ids-9632nxi-i8/16s"} }), CodeMalformed},
		{"an unparseable version is malformed", rel(func(r map[string]any) { r["version"] = "latest" }), CodeMalformed},
		{"a non-numeric build is malformed", rel(func(r map[string]any) { r["build"] = "abc" }), CodeMalformed},
		{"a build contradicting the version is malformed", rel(func(r map[string]any) { r["version"] = "4.1.25 build 111111" }), CodeMalformed},
		{"an unknown variant is malformed", rel(func(r map[string]any) { r["variant"] = "beta" }), CodeMalformed},
		{"a variant in capitals is malformed", rel(func(r map[string]any) { r["variant"] = "Custom" }), CodeMalformed},
		{"no image urls is malformed", img(func(i map[string]any) { i["urls"] = []any{} }), CodeMalformed},
		{"an ftp url is malformed", img(func(i map[string]any) { i["urls"] = []any{"ftp://fw.example.com/x"} }), CodeMalformed},
		{"a url with credentials is malformed", img(func(i map[string]any) { i["urls"] = []any{"https://user:pw@fw.example.com/x"} }), CodeMalformed},
		{"a url with a user name is malformed", img(func(i map[string]any) { i["urls"] = []any{"https://user@fw.example.com/x"} }), CodeMalformed},
		{"an http url without host is malformed", img(func(i map[string]any) { i["urls"] = []any{"http:///x"} }), CodeMalformed},
		{"a relative url is malformed", img(func(i map[string]any) { i["urls"] = []any{"digicap.dav"} }), CodeMalformed},
		{"a file url on a remote host is malformed", img(func(i map[string]any) { i["urls"] = []any{"file://server/x"} }), CodeMalformed},
		{"a file terms url is malformed", rel(func(r map[string]any) { r["terms_url"] = "file:///terms" }), CodeMalformed},
		{"a zero size is malformed", img(func(i map[string]any) { i["size"] = 0 }), CodeMalformed},
		{"a negative size is malformed", img(func(i map[string]any) { i["size"] = -5 }), CodeMalformed},
		{"a size above the default cap is too large", img(func(i map[string]any) { i["size"] = int64(DefaultMaxImageSize) + 1 }), CodeTooLarge},
		{"an uppercase digest is malformed", img(func(i map[string]any) { i["sha256"] = strings.ToUpper(testDigest) }), CodeMalformed},
		{"a short digest is malformed", img(func(i map[string]any) { i["sha256"] = testDigest[:63] }), CodeMalformed},
		{"a requires with min above max is malformed", rel(func(r map[string]any) { r["requires"] = map[string]any{"min_version": "4.2", "max_version": "4.1"} }), CodeMalformed},
		{"an empty requires is malformed", rel(func(r map[string]any) { r["requires"] = map[string]any{} }), CodeMalformed},
		{"a bad min_version is malformed", rel(func(r map[string]any) { r["requires"] = map[string]any{"min_version": "x"} }), CodeMalformed},
		{"a rollout without id is malformed", ro(func(o map[string]any) { delete(o, "id") }), CodeMalformed},
		{"a rollout with stages out of time order is malformed", ro(func(o map[string]any) {
			o["stages"] = []any{map[string]any{"at": "2026-12-03T02:00:00Z", "percent": 5}, map[string]any{"at": "2026-12-01T02:00:00Z", "percent": 25}}
		}), CodeMalformed},
		{"a rollout with two stages at the same time is malformed", ro(func(o map[string]any) {
			o["stages"] = []any{map[string]any{"at": "2026-12-01T02:00:00Z", "percent": 5}, map[string]any{"at": "2026-12-01T02:00:00Z", "percent": 25}}
		}), CodeMalformed},
		{"a shrinking rollout is malformed", ro(func(o map[string]any) {
			o["stages"] = []any{map[string]any{"at": "2026-12-01T02:00:00Z", "percent": 25}, map[string]any{"at": "2026-12-02T02:00:00Z", "percent": 5}}
		}), CodeMalformed},
		{"a percent above 100 is malformed", ro(func(o map[string]any) {
			o["stages"] = []any{map[string]any{"at": "2026-12-01T02:00:00Z", "percent": 101}}
		}), CodeMalformed},
		{"a negative percent is malformed", ro(func(o map[string]any) {
			o["stages"] = []any{map[string]any{"at": "2026-12-01T02:00:00Z", "percent": -1}}
		}), CodeMalformed},
		{"a stage without time is malformed", ro(func(o map[string]any) { o["stages"] = []any{map[string]any{"percent": 5}} }), CodeMalformed},
		{"an empty excluded serial is malformed", ro(func(o map[string]any) { o["exclude"] = []any{""} }), CodeMalformed},
		{"a rollout without stages parses", ro(func(o map[string]any) { o["stages"] = []any{} }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePayload(tt.in(t), ParseOptions{})
			wantCode(t, err, tt.want)
		})
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	m, err := ParsePayload(validPayload(t), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal(ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParsePayload(b, ParseOptions{})
	if err != nil {
		t.Fatalf("marshalled manifest does not parse: %v\n%s", err, b)
	}
	b2, _ := m2.Marshal(ParseOptions{})
	if string(b) != string(b2) {
		t.Fatalf("not stable:\n%s\n%s", b, b2)
	}
}
