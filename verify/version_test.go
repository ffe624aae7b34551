package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name, in, want, build string
	}{
		{"a device version with a capital V parses", "V4.1.25", "4.1.25", ""},
		{"a bare manifest version parses", "4.1.25", "4.1.25", ""},
		{"a lowercase v parses", "v4.62.210", "4.62.210", ""},
		{"a build after a space is kept", "V4.1.25 build 200316", "4.1.25", "200316"},
		{"a build glued to its keyword is kept", "4.1.25 build200316", "4.1.25", "200316"},
		{"a capitalised build keyword is kept", "V4.1.25 Build 200316", "4.1.25", "200316"},
		{"surrounding spaces are ignored", "  V4.1.25\t", "4.1.25", ""},
		{"two components parse", "4.1", "4.1", ""},
		{"six components parse", "1.2.3.4.5.6", "1.2.3.4.5.6", ""},
		{"leading zeros count numerically", "4.01.025", "4.1.25", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseVersion(tt.in)
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tt.in, err)
			}
			if v.String() != tt.want || v.Build() != tt.build {
				t.Errorf("ParseVersion(%q) = %q build %q, want %q build %q", tt.in, v, v.Build(), tt.want, tt.build)
			}
		})
	}
}

func TestParseVersionRejectsGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"an empty string":                 "",
		"only spaces":                     "   ",
		"a lone V":                        "V",
		"letters":                         "abc",
		"a single number":                 "4",
		"a negative component":            "4.-1.25",
		"a plus sign":                     "+4.1.25",
		"an empty component":              "4..25",
		"a trailing dot":                  "4.1.",
		"a leading dot":                   ".4.1",
		"a suffix glued to the number":    "4.1.25b",
		"an overflowing component":        "4.1.99999999999",
		"a component just over the cap":   "4.2147483648",
		"seven components":                "1.2.3.4.5.6.7",
		"a build without digits":          "4.1.25 build",
		"a build with letters":            "4.1.25 build 20a316",
		"words after the version":         "4.1.25 beta",
		"a double V":                      "VV4.1.25",
		"a space inside the version":      "4.1 .25",
		"a non-ASCII digit":               "4.1.٢",
		"a build that is absurdly long":   "4.1.25 build " + strings.Repeat("1", 40),
		"a version followed by a newline": "4.1.25\nrm -rf",
	} {
		t.Run(name+" is an error", func(t *testing.T) {
			v, err := ParseVersion(in)
			if err == nil {
				t.Fatalf("ParseVersion(%q) = %q, want an error", in, v)
			}
			if !errors.Is(err, ErrVersion) {
				t.Errorf("error %v does not wrap ErrVersion", err)
			}
		})
	}
}

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"4.1.9", "4.1.25", -1},
		{"4.1.25", "4.1.100", -1},
		{"4.1.100", "4.1.9", 1},
		{"V4.1.25", "4.1.25", 0},
		{"4.1", "4.1.0", 0},
		{"4.1.0.0", "4.1", 0},
		{"4.1.25 build 200316", "4.1.25 build 190101", 0},
		{"4.2", "4.1.99", 1},
		{"4.62.210", "4.1.25", 1},
		{"2147483647.0", "2147483646.9", 1},
	}
	for _, tt := range tests {
		t.Run(tt.a+" against "+tt.b, func(t *testing.T) {
			a, b := mustVersion(t, tt.a), mustVersion(t, tt.b)
			if got := a.Compare(b); got != tt.want {
				t.Errorf("Compare = %d, want %d", got, tt.want)
			}
			if got := b.Compare(a); got != -tt.want {
				t.Errorf("reverse Compare = %d, want %d", got, -tt.want)
			}
		})
	}
}

func mustVersion(t *testing.T, s string) Version {
	t.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		t.Fatalf("ParseVersion(%q): %v", s, err)
	}
	return v
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"V4.1.25", "4.1.25", "v4.62.210", "V4.1.25 build 200316", "4.1.25 build200316", "", "4..1", "1.2.3.4.5.6.7", "4.1.99999999999"} {
		f.Add(s)
	}
	f.Add("4.1.25.0")
	f.Add("04.01.25")
	f.Add(" 4.1.25")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		// The protected model's exact rule accepts a subset of what parses
		// as 4.1.25, and only the canonical spellings of it.
		if IsProtectedVersion(s) {
			want, _ := ParseVersion(ProtectedVersion)
			if err != nil || v.Compare(want) != 0 || v.Build() != "" || strings.TrimLeft(s, "Vv") != ProtectedVersion || len(s) > len(ProtectedVersion)+1 {
				t.Fatalf("IsProtectedVersion(%q) is true but it is not exactly 4.1.25 (%v, %v)", s, v, err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v does not wrap ErrVersion", err)
			}
			return
		}
		if v.IsZero() {
			t.Fatalf("ParseVersion(%q) returned the zero Version without an error", s)
		}
		// The canonical form parses back to an equal version.
		canon := v.String()
		if v.Build() != "" {
			canon += " build " + v.Build()
		}
		w, err := ParseVersion(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if v.Compare(w) != 0 || w.Build() != v.Build() || w.String() != v.String() {
			t.Fatalf("round trip of %q: %q/%q != %q/%q", s, v, v.Build(), w, w.Build())
		}
		if v.Compare(v) != 0 {
			t.Fatalf("%q does not compare equal to itself", s)
		}
	})
}
