package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/fwagent/fwagent/verify"
)

// SchemaVersion is the only payload schema this package reads and writes.
const SchemaVersion = 1

// DefaultMaxImageSize is the image size cap used when ParseOptions or
// VerifyOptions leave MaxImageSize at zero.
const DefaultMaxImageSize = 4 << 30

// Field limits that keep a manifest readable and bounded.
const (
	maxIDLen     = 128
	maxModelLen  = 128
	maxURLLen    = 2048
	maxBuildLen  = 16
	maxNotesLen  = 16 << 10
	maxListItems = 10000 // models, urls, include, exclude, groups, stages
)

// Manifest is the signed payload: which releases exist, for which models.
type Manifest struct {
	Schema   int       `json:"schema"`   // always SchemaVersion
	Serial   int64     `json:"serial"`   // the manifest's own version; only grows
	Issued   time.Time `json:"issued"`   // RFC 3339
	Expires  time.Time `json:"expires"`  // RFC 3339; devices refuse the manifest after it
	Releases []Release `json:"releases"` // may be empty, never absent
}

// Release is one firmware image offered to a set of models.
type Release struct {
	ID       string    `json:"id"`                  // unique in the manifest
	Models   []string  `json:"models"`              // exact model IDs
	Version  string    `json:"version"`             // e.g. 4.1.25
	Build    string    `json:"build,omitempty"`     // e.g. 200316
	Variant  string    `json:"variant"`             // custom | standard
	Image    Image     `json:"image"`               // where to get it and what it must hash to
	Requires *Requires `json:"requires,omitempty"`  // installed firmware range
	TermsURL string    `json:"terms_url,omitempty"` // vendor terms the operator accepts
	Notes    string    `json:"notes,omitempty"`     // free text for people
	Rollout  *Rollout  `json:"rollout,omitempty"`   // staged rollout; nil = every matching device
}

// Image says where a release's image is and what it must be.
type Image struct {
	URLs   []string `json:"urls"`   // http, https or file URLs, tried in order
	Size   int64    `json:"size"`   // bytes
	SHA256 string   `json:"sha256"` // 64 lowercase hex digits
}

// Requires bounds the firmware a device must run before it takes a release.
type Requires struct {
	MinVersion string `json:"min_version,omitempty"`
	MaxVersion string `json:"max_version,omitempty"`
}

// ParseOptions are the limits ParsePayload enforces.
type ParseOptions struct {
	// MaxImageSize caps Image.Size; zero means DefaultMaxImageSize.
	MaxImageSize int64
}

// payloadFields are every JSON key the payload schema knows.
var payloadFields = jsonFields(reflect.TypeFor[Manifest]())

// ParsePayload parses a manifest payload strictly: at most MaxPayloadSize
// bytes, one JSON object, no unknown or duplicate keys (keys match exactly,
// case included), no trailing data, schema SchemaVersion, and every field
// well formed. Errors are *Error with CodeTooLarge, CodeUnsupportedSchema or
// CodeMalformed. It checks neither dates against a clock nor signatures.
func ParsePayload(data []byte, opt ParseOptions) (*Manifest, error) {
	if len(data) > MaxPayloadSize {
		return nil, newError(CodeTooLarge, nil, "payload is %d bytes, the limit is %d: remove old releases or shorten notes", len(data), MaxPayloadSize)
	}
	unknown, err := checkJSON(data, payloadFields)
	if err != nil {
		return nil, newError(CodeMalformed, err, "payload is not valid manifest JSON")
	}
	var head struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, newError(CodeMalformed, err, "payload is not valid manifest JSON")
	}
	if head.Schema == nil {
		return nil, newError(CodeMalformed, nil, "payload has no \"schema\": add \"schema\": %d", SchemaVersion)
	}
	if s := string(head.Schema); s != fmt.Sprint(SchemaVersion) {
		return nil, newError(CodeUnsupportedSchema, nil, "payload schema %s is not supported (this version reads schema %d): update fwagent or publish a schema %d manifest", s, SchemaVersion, SchemaVersion)
	}
	if unknown != "" {
		return nil, newError(CodeMalformed, nil, "payload has unknown field %q: remove it or check its spelling (keys are lowercase)", unknown)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, newError(CodeMalformed, err, "payload does not match the manifest schema")
	}
	if err := m.Validate(opt); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes m as indented JSON after validating it, so fwctl never
// writes a manifest that ParsePayload would refuse.
func (m *Manifest) Marshal(opt ParseOptions) ([]byte, error) {
	if err := m.Validate(opt); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	b = append(b, '\n')
	if len(b) > MaxPayloadSize {
		return nil, newError(CodeTooLarge, nil, "payload would be %d bytes, the limit is %d: remove old releases or shorten notes", len(b), MaxPayloadSize)
	}
	return b, nil
}

// Release returns the release with the given id, or nil.
func (m *Manifest) Release(id string) *Release {
	for i := range m.Releases {
		if m.Releases[i].ID == id {
			return &m.Releases[i]
		}
	}
	return nil
}

// Validate checks every field of m; errors are *Error with CodeMalformed,
// CodeUnsupportedSchema or CodeTooLarge and name the offending field.
func (m *Manifest) Validate(opt ParseOptions) error {
	if m.Schema != SchemaVersion {
		return newError(CodeUnsupportedSchema, nil, "payload schema %d is not supported (this version reads schema %d)", m.Schema, SchemaVersion)
	}
	if m.Serial < 1 {
		return malformed("serial", "must be a positive integer that grows with every manifest you publish")
	}
	if m.Issued.IsZero() {
		return malformed("issued", "is missing: write the signing time in RFC 3339, like 2026-12-01T00:00:00Z")
	}
	if m.Expires.IsZero() {
		return malformed("expires", "is missing: write an RFC 3339 time, like 2027-01-01T00:00:00Z")
	}
	if !m.Expires.After(m.Issued) {
		return malformed("expires", "must be later than issued")
	}
	if m.Releases == nil {
		return malformed("releases", "is missing: write \"releases\": [] for a manifest without releases")
	}
	if len(m.Releases) > maxListItems {
		return newError(CodeTooLarge, nil, "%d releases, the limit is %d", len(m.Releases), maxListItems)
	}
	ids := make(map[string]bool, len(m.Releases))
	for i := range m.Releases {
		r := &m.Releases[i]
		where := fmt.Sprintf("releases[%d]", i)
		if err := r.validate(where, opt); err != nil {
			return err
		}
		if ids[r.ID] {
			return malformed(where+".id", fmt.Sprintf("%q is used by two releases: ids must be unique", r.ID))
		}
		ids[r.ID] = true
	}
	return nil
}

func malformed(field, what string) *Error {
	return newError(CodeMalformed, nil, "%s %s", field, what)
}

// Validate checks one release as ParsePayload would (fwctl release uses it
// before printing a release).
func (r *Release) Validate(opt ParseOptions) error {
	return r.validate("release", opt)
}

func (r *Release) validate(where string, opt ParseOptions) error {
	if err := checkID(where+".id", r.ID); err != nil {
		return err
	}
	where = fmt.Sprintf("%s (%s)", where, r.ID)
	if len(r.Models) == 0 {
		return malformed(where+".models", "is empty: list the exact model IDs this image is for")
	}
	if err := checkList(where+".models", r.Models, maxModelLen); err != nil {
		return err
	}
	for i, a := range r.Models {
		for _, b := range r.Models[:i] {
			if verify.SameModel(a, b) {
				return malformed(where+".models", fmt.Sprintf("lists %q twice", a))
			}
		}
	}
	v, err := verify.ParseVersion(r.Version)
	if err != nil {
		return newError(CodeMalformed, err, "%s.version is not a firmware version", where)
	}
	if r.Build != "" {
		if len(r.Build) > maxBuildLen || strings.Trim(r.Build, "0123456789") != "" {
			return malformed(where+".build", fmt.Sprintf("%q must be digits only, like 200316", r.Build))
		}
		if v.Build() != "" && v.Build() != r.Build {
			return malformed(where+".build", fmt.Sprintf("%q contradicts the build in version %q", r.Build, r.Version))
		}
	}
	switch verify.Variant(r.Variant) {
	case verify.Custom, verify.Standard:
	default:
		return malformed(where+".variant", fmt.Sprintf("%q must be %q or %q", r.Variant, verify.Custom, verify.Standard))
	}
	if err := r.Image.validate(where+".image", opt); err != nil {
		return err
	}
	if q := r.Requires; q != nil {
		var lo, hi verify.Version
		if q.MinVersion == "" && q.MaxVersion == "" {
			return malformed(where+".requires", "is empty: give min_version, max_version or remove it")
		}
		if q.MinVersion != "" {
			if lo, err = verify.ParseVersion(q.MinVersion); err != nil {
				return newError(CodeMalformed, err, "%s.requires.min_version is not a firmware version", where)
			}
		}
		if q.MaxVersion != "" {
			if hi, err = verify.ParseVersion(q.MaxVersion); err != nil {
				return newError(CodeMalformed, err, "%s.requires.max_version is not a firmware version", where)
			}
		}
		if q.MinVersion != "" && q.MaxVersion != "" && lo.Compare(hi) > 0 {
			return malformed(where+".requires", fmt.Sprintf("min_version %s is above max_version %s", q.MinVersion, q.MaxVersion))
		}
	}
	if r.TermsURL != "" {
		if err := checkURL(where+".terms_url", r.TermsURL, false); err != nil {
			return err
		}
	}
	if len(r.Notes) > maxNotesLen {
		return newError(CodeTooLarge, nil, "%s.notes is %d bytes, the limit is %d", where, len(r.Notes), maxNotesLen)
	}
	if r.Rollout != nil {
		if err := r.Rollout.validate(where + ".rollout"); err != nil {
			return err
		}
	}
	return nil
}

func (im *Image) validate(where string, opt ParseOptions) error {
	if len(im.URLs) == 0 {
		return malformed(where+".urls", "is empty: give at least one URL")
	}
	if len(im.URLs) > maxListItems {
		return newError(CodeTooLarge, nil, "%s.urls has %d entries, the limit is %d", where, len(im.URLs), maxListItems)
	}
	for i, u := range im.URLs {
		if err := checkURL(fmt.Sprintf("%s.urls[%d]", where, i), u, true); err != nil {
			return err
		}
	}
	limit := opt.MaxImageSize
	if limit <= 0 {
		limit = DefaultMaxImageSize
	}
	if im.Size <= 0 {
		return malformed(where+".size", "must be the image size in bytes, above zero")
	}
	if im.Size > limit {
		return newError(CodeTooLarge, nil, "%s.size %d is above the image size limit %d: check the size or raise the limit", where, im.Size, limit)
	}
	if !verify.IsSHA256Hex(im.SHA256) {
		return malformed(where+".sha256", fmt.Sprintf("%q must be 64 lowercase hex digits: compute it with `fwctl release`", im.SHA256))
	}
	return nil
}

// checkID accepts 1-128 characters from [A-Za-z0-9._-] (and a leading
// letter or digit), so ids are safe in file names, logs and URLs.
func checkID(field, id string) error {
	if id == "" {
		return malformed(field, "is missing")
	}
	if len(id) > maxIDLen {
		return malformed(field, fmt.Sprintf("is longer than %d characters", maxIDLen))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return malformed(field, fmt.Sprintf("%q may hold only letters, digits, '.', '_' and '-', starting with a letter or digit", id))
		}
	}
	return nil
}

// checkList rejects empty entries, surrounding spaces and overlong entries.
func checkList(field string, items []string, maxLen int) error {
	if len(items) > maxListItems {
		return newError(CodeTooLarge, nil, "%s has %d entries, the limit is %d", field, len(items), maxListItems)
	}
	for i, s := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case s == "":
			return malformed(f, "is empty")
		case strings.TrimSpace(s) != s:
			return malformed(f, fmt.Sprintf("%q has surrounding spaces: write it exactly", s))
		case len(s) > maxLen:
			return malformed(f, fmt.Sprintf("is longer than %d characters", maxLen))
		}
		for _, c := range s {
			if c < 0x20 || c == 0x7f {
				return malformed(f, "contains a control character")
			}
		}
	}
	return nil
}

// checkURL accepts absolute http and https URLs with a host, and (when
// allowFile) file:///absolute/path URLs for offline sites. URLs carrying
// credentials (userinfo) are refused: secrets never go in a signed manifest.
func checkURL(field, s string, allowFile bool) error {
	if len(s) > maxURLLen {
		return malformed(field, fmt.Sprintf("is longer than %d characters", maxURLLen))
	}
	u, err := url.Parse(s)
	if err != nil {
		return newError(CodeMalformed, err, "%s is not a URL", field)
	}
	if u.User != nil {
		return malformed(field, "carries credentials (a user name or password), which never belong in a signed manifest: remove them from the URL")
	}
	if u.Opaque != "" {
		return malformed(field, fmt.Sprintf("%q is not a hierarchical URL", s))
	}
	switch u.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return malformed(field, fmt.Sprintf("%q has no host", s))
		}
	case "file":
		if !allowFile {
			return malformed(field, fmt.Sprintf("%q must be an http or https URL", s))
		}
		if u.Host != "" && u.Host != "localhost" {
			return malformed(field, fmt.Sprintf("%q names a remote host: file URLs look like file:///srv/fw/digicap.dav", s))
		}
		if !strings.HasPrefix(u.Path, "/") || u.Path == "/" {
			return malformed(field, fmt.Sprintf("%q needs an absolute file path", s))
		}
	default:
		want := "http or https"
		if allowFile {
			want = "http, https or file"
		}
		return malformed(field, fmt.Sprintf("%q must be an %s URL", s, want))
	}
	return nil
}
