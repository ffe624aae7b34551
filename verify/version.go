package verify

import (
	"fmt"
	"strings"
)

// MaxVersionComponents is the most dot-separated numbers a version may have.
const MaxVersionComponents = 6

// maxComponent caps one version number; firmware versions stay far below it.
const maxComponent = 1<<31 - 1

// maxBuildDigits caps the length of a build identifier like 200316.
const maxBuildDigits = 16

// Version is a firmware version as devices and manifests write it: two to
// six numeric components (V4.1.25) and an optional build (build 200316).
// The zero Version is not a valid version.
type Version struct {
	nums  [MaxVersionComponents]uint32
	n     uint8
	build string
}

// ParseVersion parses "V4.1.25", "4.1.25", "v4.62.210", optionally followed by
// a build such as "V4.1.25 build 200316" or "4.1.25 build200316". Anything
// else, including an empty string, letters inside components, signs, empty
// components, numbers above 2^31-1 or more than six components, is an error
// wrapping ErrVersion.
func ParseVersion(s string) (Version, error) {
	var v Version
	orig := s
	s = strings.TrimSpace(s)
	bad := func(why string) (Version, error) {
		return Version{}, fmt.Errorf("%w %q: %s; write it like 4.1.25 or V4.1.25 build 200316", ErrVersion, orig, why)
	}
	if s == "" {
		return bad("it is empty")
	}
	if s[0] == 'V' || s[0] == 'v' {
		s = s[1:]
	}
	// Numeric components.
	i := 0
	for {
		if v.n == MaxVersionComponents {
			return bad(fmt.Sprintf("more than %d components", MaxVersionComponents))
		}
		start := i
		var x uint64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			x = x*10 + uint64(s[i]-'0')
			if x > maxComponent {
				return bad("a component is too large")
			}
			i++
		}
		if i == start {
			return bad("expected a number")
		}
		v.nums[v.n] = uint32(x)
		v.n++
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		break
	}
	if v.n < 2 {
		return bad("a version needs at least two components")
	}
	rest := strings.TrimSpace(s[i:])
	if i < len(s) && rest == s[i:] {
		// Something glued to the last number, like 4.1.25b.
		return bad(fmt.Sprintf("unexpected %q after the version", rest))
	}
	if rest == "" {
		return v, nil
	}
	b, ok := parseBuild(rest)
	if !ok {
		return bad(fmt.Sprintf("unexpected %q after the version (only a build like \"build 200316\" may follow)", rest))
	}
	v.build = b
	return v, nil
}

// parseBuild accepts "build 200316", "build200316" and "Build 200316",
// returning the digits.
func parseBuild(s string) (string, bool) {
	if len(s) < len("build") || !strings.EqualFold(s[:len("build")], "build") {
		return "", false
	}
	d := strings.TrimSpace(s[len("build"):])
	if d == "" || len(d) > maxBuildDigits {
		return "", false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return "", false
		}
	}
	return d, true
}

// Compare returns -1, 0 or 1 as v is older than, equal to or newer than o.
// Only the numeric components count, missing components count as 0 (4.1 ==
// 4.1.0), and the build is ignored.
func (v Version) Compare(o Version) int {
	for i := 0; i < MaxVersionComponents; i++ {
		a, b := v.nums[i], o.nums[i]
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
	}
	return 0
}

// String returns the numeric components joined by dots, like "4.1.25",
// without the V prefix or the build.
func (v Version) String() string {
	var sb strings.Builder
	for i := 0; i < int(v.n); i++ {
		if i > 0 {
			sb.WriteByte('.')
		}
		fmt.Fprintf(&sb, "%d", v.nums[i])
	}
	return sb.String()
}

// Build returns the build digits given after the version ("200316"), or ""
// when there was none.
func (v Version) Build() string { return v.build }

// IsZero reports whether v is the zero Version, which no parse returns.
func (v Version) IsZero() bool { return v.n == 0 }
