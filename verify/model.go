package verify

import (
	"fmt"
	"strings"
	"unicode"
)

// ProtectedModel is the recorder model that must only ever receive the
// custom firmware ProtectedVersion: standard firmware damages it permanently.
const ProtectedModel = "iDS-9632NXI-I8/16S"

// ProtectedVersion is the only firmware version allowed on ProtectedModel,
// and only in the Custom variant.
const ProtectedVersion = "4.1.25"

// SameModel reports whether two model IDs name the same model: exact after
// trimming surrounding spaces and folding case. It never matches a prefix:
// iDS-9632NXI-I8/16S is not iDS-9632NXI-I8/S nor iDS-9632NXI-I8/16S-X.
func SameModel(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// squashModel drops every space, control and format character and folds
// case, so that "iDS-9632NXI-I8 / 16S" squashes like the real model ID.
func squashModel(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return unicode.ToLower(unicode.ToUpper(r))
	}, s)
}

// IsProtectedModel reports whether model is ProtectedModel, or differs from
// it only in spaces, invisible characters or case. It errs on the side of
// protection: the built-in rule applies to every such string.
func IsProtectedModel(model string) bool {
	return SameModel(model, ProtectedModel) || squashModel(model) == squashModel(ProtectedModel)
}

// IsProtectedVersion reports whether s is exactly ProtectedVersion as a
// release or a recorder writes it: "4.1.25", "V4.1.25" or "v4.1.25".
// Nothing else counts, not even what ParseVersion and Compare would call the
// same version: no extra components ("4.1.25.0"), no leading zeros
// ("04.01.25"), no spaces, no build inside the string ("4.1.25 build
// 200316"; a release gives its build in its own field, a recorder in
// firmwareReleasedDate). The protected model's rule and its post-install
// check use it; the simulator's damage rule is the same.
func IsProtectedVersion(s string) bool {
	if s != "" && (s[0] == 'V' || s[0] == 'v') {
		s = s[1:]
	}
	return s == ProtectedVersion
}

// Variant is the kind of firmware a release carries.
type Variant string

// The firmware variants a release may declare.
const (
	// Custom is model-specific firmware, such as the 4.1.25 build that
	// iDS-9632NXI-I8/16S needs.
	Custom Variant = "custom"
	// Standard is the vendor's general firmware for a model family.
	Standard Variant = "standard"
)

// ParseVariant parses "custom" or "standard" (case and surrounding spaces
// ignored). Anything else is an error wrapping ErrVariant.
func ParseVariant(s string) (Variant, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case string(Custom):
		return Custom, nil
	case string(Standard):
		return Standard, nil
	}
	return "", fmt.Errorf("%w %q: write custom or standard", ErrVariant, s)
}
