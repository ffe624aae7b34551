package verify

import (
	"fmt"
	"strings"

	"github.com/fwagent/fwagent/device"
)

// Release is what the policy needs to know about a signed release.
type Release struct {
	ID         string   `json:"id"`
	Models     []string `json:"models"`
	Version    string   `json:"version"`
	Build      string   `json:"build,omitempty"`
	Variant    Variant  `json:"variant"`
	Size       int64    `json:"size"`
	SHA256     string   `json:"sha256"`                // lowercase hex
	MinVersion string   `json:"min_version,omitempty"` // requires: lowest installed version, inclusive; "" = none
	MaxVersion string   `json:"max_version,omitempty"` // requires: highest installed version, inclusive; "" = none
}

// Policy is the operator's local configuration. It can only make the
// decision stricter than the built-in rules; nothing in it bypasses the rule
// for iDS-9632NXI-I8/16S.
type Policy struct {
	// AllowDowngrade permits installing an older or the same version.
	AllowDowngrade bool `json:"allow_downgrade"`
	// Pins maps a model to the only image SHA-256 digests (lowercase hex)
	// that may be installed on it. A model with an empty list gets nothing.
	Pins map[string][]string `json:"pins,omitempty"`
}

// Reason is one cause of a refusal: a stable code and a sentence that says
// what is wrong and what to do.
type Reason struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Decision is the verdict of the policy. It is allowed only when it has no
// reasons; every refusal lists all its reasons, not only the first.
type Decision struct {
	Allowed bool     `json:"allowed"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// Has reports whether the decision carries a reason with code c.
func (d Decision) Has(c Code) bool {
	for _, r := range d.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}

// Codes returns the decision's reason codes in order.
func (d Decision) Codes() []Code {
	cs := make([]Code, len(d.Reasons))
	for i, r := range d.Reasons {
		cs[i] = r.Code
	}
	return cs
}

// Err returns nil for an allowed decision and a *RefusalError otherwise.
func (d Decision) Err() error {
	if d.Allowed && len(d.Reasons) == 0 {
		return nil
	}
	return &RefusalError{Reasons: d.Reasons}
}

// String summarises the decision for logs: "allowed" or the refusal.
func (d Decision) String() string {
	if err := d.Err(); err != nil {
		return err.Error()
	}
	return "allowed"
}

// decision collects reasons.
type decision struct{ reasons []Reason }

func (d *decision) add(c Code, format string, args ...any) {
	d.reasons = append(d.reasons, Reason{Code: c, Message: fmt.Sprintf(format, args...)})
}

func (d *decision) has(c Code) bool {
	for _, r := range d.reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}

func (d *decision) result() Decision {
	return Decision{Allowed: len(d.reasons) == 0, Reasons: d.reasons}
}

// releaseName names a release in messages.
func releaseName(rel Release) string {
	if rel.ID == "" {
		return "the release"
	}
	return fmt.Sprintf("release %q", rel.ID)
}

// Evidence is what the verified manifest says about who vouched for a
// release: the one input of the policy that does not come from the
// release, the device or the operator's config. The zero Evidence proves
// nothing (no signer), so a caller that has none, or forgets it, only makes
// the protected model's rule stricter.
type Evidence struct {
	// Signers are the key IDs of the distinct trusted keys whose valid
	// signatures cover the release: manifest.Verified.Signers of the
	// manifest that carries it (see manifest.Verified.Evidence). An ID
	// listed twice counts once; an empty ID does not count.
	Signers []string
}

// MinProtectedSigners is how many distinct trusted keys must have signed a
// release for iDS-9632NXI-I8/16S when its digest is not pinned: the
// two-person rule, whatever the manifest threshold says.
const MinProtectedSigners = 2

// distinctSigners counts the distinct non-empty signer IDs.
func (e Evidence) distinctSigners() int {
	seen := make(map[string]bool, len(e.Signers))
	for _, s := range e.Signers {
		if s != "" {
			seen[s] = true
		}
	}
	return len(seen)
}

// Decide applies every rule that can be checked before the download: the
// model, the built-in rule for iDS-9632NXI-I8/16S (with its second proof,
// from ev or the pins), the variant, the operator's pins against the
// release's digest, the requires range, and downgrade/reinstall.
func Decide(id device.Identity, rel Release, pol Policy, ev Evidence) Decision {
	var d decision
	decide(&d, id, rel, pol, ev)
	return d.result()
}

func decide(d *decision, id device.Identity, rel Release, pol Policy, ev Evidence) {
	name := releaseName(rel)

	// The model.
	switch {
	case len(rel.Models) == 0:
		d.add(CodeReleaseIncomplete, "%s lists no models: fix the manifest so that it names the models it is for", name)
	case strings.TrimSpace(id.Model) == "":
		d.add(CodeModelMismatch, "the device reported no model, so %s (for %s) cannot be matched to it: check the device's identity", name, strings.Join(rel.Models, ", "))
	case !modelListed(id.Model, rel.Models):
		d.add(CodeModelMismatch, "%s is for %s, but the device reports model %q: publish a release for this exact model", name, strings.Join(rel.Models, ", "), id.Model)
	}

	// The built-in rule. Of pol, only the pins are consulted, as a proof.
	protectedRule(d, id, rel, pol, ev)

	// The variant, for every other model.
	if _, err := ParseVariant(string(rel.Variant)); err != nil && !IsProtectedModel(id.Model) {
		d.add(CodeVariantUnknown, "%s declares variant %q, which is neither custom nor standard: fix the manifest", name, rel.Variant)
	}

	// The operator's pins, against the digest the release declares: an
	// image the pins would refuse is not even downloaded.
	if want := normDigest(rel.SHA256); IsSHA256Hex(want) {
		if pinned, ok := pinsFor(pol.Pins, id.Model); ok && !contains(pinned, want) {
			d.add(CodeDigestNotPinned, "%s has SHA-256 %s, which is not among the digests pinned for model %s in the agent config: add it to the pins in the policy section only if you trust this image", name, want, id.Model)
		}
	}

	// Versions.
	target, terr := ParseVersion(rel.Version)
	if terr != nil {
		d.add(CodeVersionUnparseable, "%s has version %q, which cannot be read: fix the manifest (write it like 4.1.25)", name, rel.Version)
	}
	installed, ierr := ParseVersion(id.FirmwareVersion)
	if ierr != nil {
		d.add(CodeVersionUnparseable, "the device reports firmware version %q, which cannot be read, so no release can be checked against it: check the device's identity", id.FirmwareVersion)
	}
	requires(d, name, rel, installed, ierr == nil)
	if terr != nil || ierr != nil {
		return
	}
	switch c := target.Compare(installed); {
	case c < 0 && !pol.AllowDowngrade:
		d.add(CodeDowngradeForbidden, "%s (version %s) is older than the installed version %s: downgrades are refused unless allow_downgrade is set in the policy section of the agent config", name, target, installed)
	case c == 0 && !pol.AllowDowngrade:
		d.add(CodeReinstallForbidden, "%s is version %s, which the device already runs: nothing to do (set allow_downgrade in the policy section of the agent config to reinstall it)", name, target)
	}
}

// modelListed reports whether model is one of models.
func modelListed(model string, models []string) bool {
	for _, m := range models {
		if SameModel(model, m) {
			return true
		}
	}
	return false
}

// protectedRule is the vendor's rule, built in: a device whose model is
// iDS-9632NXI-I8/16S (or differs from it only in spaces, invisible
// characters or case) may only receive the custom firmware written exactly
// 4.1.25, and only with two independent proofs that the release is that
// firmware: its declaration, signed, and a second one (secondProof). No
// manifest field, config setting or flag opens it; pins can only supply the
// second proof.
func protectedRule(d *decision, id device.Identity, rel Release, pol Policy, ev Evidence) {
	if !IsProtectedModel(id.Model) {
		return
	}
	name := releaseName(rel)
	if v, err := ParseVariant(string(rel.Variant)); err != nil || v != Custom {
		d.add(CodeStandardFirmwareForbidden, "model %s requires the custom firmware v%s, but %s is %q firmware: standard firmware permanently damages this model; install only the custom firmware v%s from the %s product page", ProtectedModel, ProtectedVersion, name, rel.Variant, ProtectedVersion, ProtectedModel)
		return
	}
	if !IsProtectedVersion(rel.Version) {
		d.add(CodeCustomVersionForbidden, "model %s accepts only the custom firmware written exactly %s (or V%s), but %s is custom version %q: publish the custom firmware v%s from the %s product page, with its version written exactly %s (no extra parts, leading zeros, spaces or build; the build has its own field)", ProtectedModel, ProtectedVersion, ProtectedVersion, name, rel.Version, ProtectedVersion, ProtectedModel, ProtectedVersion)
		return
	}
	secondProof(d, id, rel, pol, ev)
}

// secondProof requires, for a release that declares custom 4.1.25 for the
// protected model, a proof independent of that declaration: the release's
// SHA-256 pinned for the model in the operator's policy, or valid
// signatures by MinProtectedSigners distinct trusted keys. A signer who
// signs the standard image by mistake cannot be caught by anything inside
// the image (standard and custom images look alike), only by a second
// person or by a digest the operator pinned.
func secondProof(d *decision, id device.Identity, rel Release, pol Policy, ev Evidence) {
	want := normDigest(rel.SHA256)
	pinned, havePins := pinsFor(pol.Pins, id.Model)
	if IsSHA256Hex(want) && contains(pinned, want) {
		return
	}
	signers := ev.distinctSigners()
	if signers >= MinProtectedSigners {
		return
	}
	pinText := "no digest is pinned for this model"
	if havePins {
		pinText = "the digests pinned for this model do not include it"
	}
	d.add(CodeProtectedNeedsSecondProof, "model %s takes %s (custom %s) only with a second, independent proof that it is the custom firmware, and it has none: %d distinct trusted key(s) signed it and %s (SHA-256 %s): "+
		"either pin the digest the vendor publishes for the custom firmware v%s on the %s product page under policy.pins for %s in the agent config, "+
		"or have a second integrator check the image and co-sign the manifest with `fwctl sign` (%d distinct trusted keys are needed whatever manifest.threshold says)",
		ProtectedModel, releaseName(rel), rel.Version, signers, pinText, want, ProtectedVersion, ProtectedModel, ProtectedModel, MinProtectedSigners)
}

// requires checks the release's requires range against the installed
// version.
func requires(d *decision, name string, rel Release, installed Version, known bool) {
	var lo, hi Version
	var haveLo, haveHi bool
	if s := strings.TrimSpace(rel.MinVersion); s != "" {
		v, err := ParseVersion(s)
		if err != nil {
			d.add(CodeVersionUnparseable, "%s requires at least version %q, which cannot be read: fix the manifest", name, rel.MinVersion)
			return
		}
		lo, haveLo = v, true
	}
	if s := strings.TrimSpace(rel.MaxVersion); s != "" {
		v, err := ParseVersion(s)
		if err != nil {
			d.add(CodeVersionUnparseable, "%s requires at most version %q, which cannot be read: fix the manifest", name, rel.MaxVersion)
			return
		}
		hi, haveHi = v, true
	}
	if !known || (!haveLo && !haveHi) {
		return
	}
	if (haveLo && installed.Compare(lo) < 0) || (haveHi && installed.Compare(hi) > 0) {
		d.add(CodeRequiresNotMet, "%s requires an installed version %s, but the device runs %s: install a release that bridges the gap first", name, rangeText(rel), installed)
	}
}

func rangeText(rel Release) string {
	lo, hi := strings.TrimSpace(rel.MinVersion), strings.TrimSpace(rel.MaxVersion)
	switch {
	case lo != "" && hi != "":
		return fmt.Sprintf("from %s to %s", lo, hi)
	case lo != "":
		return "of at least " + lo
	default:
		return "of at most " + hi
	}
}

// DecideImage applies every rule: those of Decide (with the same evidence),
// then the image's size and SHA-256 against the release, the operator's
// pins for the device's model against the image's digest, and the digicap
// structure (a zip, an encrypted container or a malformed image is
// refused).
func DecideImage(id device.Identity, rel Release, img ImageFacts, pol Policy, ev Evidence) Decision {
	var d decision
	decide(&d, id, rel, pol, ev)
	name := releaseName(rel)

	if rel.Size <= 0 {
		d.add(CodeReleaseIncomplete, "%s gives no image size: fix the manifest", name)
	} else if img.Size != rel.Size {
		d.add(CodeSizeMismatch, "the downloaded image is %d bytes but %s says %d: the download is incomplete or the mirror serves another file; download it again", img.Size, name, rel.Size)
	}

	want := normDigest(rel.SHA256)
	got := strings.ToLower(img.SHA256)
	switch {
	case !IsSHA256Hex(want):
		d.add(CodeReleaseIncomplete, "%s gives no valid SHA-256 (%q): fix the manifest", name, rel.SHA256)
	case got != want:
		d.add(CodeDigestMismatch, "the downloaded image has SHA-256 %s but %s says %s: the file is corrupt or was replaced; download it again from a trusted mirror", got, name, want)
	}

	if pinned, ok := pinsFor(pol.Pins, id.Model); ok && !contains(pinned, got) && !d.has(CodeDigestNotPinned) {
		d.add(CodeDigestNotPinned, "the image's SHA-256 %s is not among the digests pinned for model %s in the agent config: add it to the pins in the policy section only if you trust this image", got, id.Model)
	}

	switch {
	case img.Format == FormatZip:
		d.add(CodeImageIsZip, "the image is a zip archive, the vendor's download package: extract digicap.dav from it and publish that file instead")
	case img.Format == FormatEncrypted:
		d.add(CodeImageEncrypted, "the image is an encrypted HK20/HK30 container whose structure cannot be checked: publish an unencrypted digicap.dav for this model")
	case img.FormatErr != nil:
		d.add(CodeImageMalformed, "the image is not a valid digicap.dav (%v)", img.FormatErr)
	case img.Digicap == nil:
		d.add(CodeImageMalformed, "the image's digicap.dav structure was not checked: inspect it with verify.ImageStream before deciding")
	}
	return d.result()
}

// pinsFor returns the digests pinned for model, matching keys with
// SameModel (and, for the protected model, every key that differs from it
// only in spaces or case). ok is false when nothing is pinned for it.
func pinsFor(pins map[string][]string, model string) (digests []string, ok bool) {
	for m, ds := range pins {
		if SameModel(m, model) || (IsProtectedModel(model) && IsProtectedModel(m)) {
			ok = true
			for _, d := range ds {
				digests = append(digests, normDigest(d))
			}
		}
	}
	return digests, ok
}

// normDigest is a digest as releases and pins are compared: trimmed and
// lowercase.
func normDigest(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// IsSHA256Hex reports whether s is a SHA-256 digest written as 64 lowercase
// hex digits, the only form releases and pins use.
func IsSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ConfirmInstall checks, after an install and reboot, that the device is
// still the same model and reports exactly the release's version (and its
// build, when both the release and the device give one). A protected
// model must report its firmware version written exactly as
// IsProtectedVersion wants (V4.1.25). Otherwise the decision carries
// post_install_mismatch.
func ConfirmInstall(before, after device.Identity, rel Release) Decision {
	var d decision
	name := releaseName(rel)
	if !SameModel(before.Model, after.Model) {
		d.add(CodePostInstallMismatch, "the device reported model %q before installing %s and %q after it: stop updating this device and have it inspected", before.Model, name, after.Model)
	}
	want, werr := ParseVersion(rel.Version)
	got, gerr := ParseVersion(after.FirmwareVersion)
	protected := IsProtectedModel(before.Model) || IsProtectedModel(after.Model)
	switch {
	case protected && !IsProtectedVersion(after.FirmwareVersion):
		d.add(CodePostInstallMismatch, "after installing %s the device (model %s) reports firmware version %q, not exactly V%s: the custom firmware did not take or the device runs something else; do not install anything more on it and have it checked against the %s product page", name, after.Model, after.FirmwareVersion, ProtectedVersion, ProtectedModel)
	case werr != nil:
		d.add(CodePostInstallMismatch, "%s has version %q, which cannot be read, so the install cannot be confirmed: fix the manifest and check the device by hand", name, rel.Version)
	case gerr != nil:
		d.add(CodePostInstallMismatch, "after installing %s the device reports firmware version %q, which cannot be read: check the device by hand", name, after.FirmwareVersion)
	case got.Compare(want) != 0:
		d.add(CodePostInstallMismatch, "after installing %s (version %s) the device reports version %s: the install did not take; check the device and its upgrade log", name, want, got)
	default:
		wb, gb := normBuild(rel.Build), normBuild(after.FirmwareBuild)
		if gb == "" {
			gb = got.Build()
		}
		if wb != "" && gb != "" && wb != gb {
			d.add(CodePostInstallMismatch, "after installing %s (build %s) the device reports build %s: the device runs another build of version %s; check it by hand", name, wb, gb, want)
		}
	}
	return d.result()
}

// normBuild returns the digits of "build 200316", "200316" or "" .
func normBuild(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if b, ok := parseBuild(s); ok {
		return b
	}
	if b, ok := parseBuild("build " + s); ok {
		return b
	}
	return s
}
