package verify_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

const protected = "iDS-9632NXI-I8/16S"

// image builds a small valid image and its facts.
func image(t testing.TB, spec testimage.Spec) verify.ImageFacts {
	t.Helper()
	b := testimage.Bytes(spec)
	s := verify.NewImageStream()
	s.Write(b)
	return s.Facts()
}

// releaseFor returns a release matching img.
func releaseFor(img verify.ImageFacts, models []string, variant verify.Variant, version string) verify.Release {
	return verify.Release{ID: "r1", Models: models, Version: version, Variant: variant, Size: img.Size, SHA256: img.SHA256}
}

func ident(model, version string) device.Identity {
	return device.Identity{Model: model, Serial: "DS-1", FirmwareVersion: version}
}

func codes(cs ...verify.Code) []verify.Code { return cs }

// Evidences the tests use: none, one key, one key listed twice, two keys.
var (
	noSigner   = verify.Evidence{}
	oneSigner  = verify.Evidence{Signers: []string{"key-a"}}
	sameTwice  = verify.Evidence{Signers: []string{"key-a", "key-a", ""}}
	twoSigners = verify.Evidence{Signers: []string{"key-a", "key-b"}}
)

func TestDecideImage(t *testing.T) {
	img := image(t, testimage.Spec{})
	other := image(t, testimage.Spec{Version: "9.9.9"})
	zip := image(t, testimage.Spec{Corrupt: testimage.Zip})
	enc := image(t, testimage.Spec{Corrupt: testimage.Encrypted})
	bad := image(t, testimage.Spec{Corrupt: testimage.BadEntryChecksum})
	good := releaseFor(img, []string{protected}, verify.Custom, "4.1.25")
	std := releaseFor(img, []string{"iDS-9632NXI-I8/S"}, verify.Standard, "4.1.64")
	with := func(r verify.Release, f func(*verify.Release)) verify.Release { f(&r); return r }

	tests := []struct {
		name string
		id   device.Identity
		rel  verify.Release
		img  verify.ImageFacts
		pol  verify.Policy
		want []verify.Code
	}{
		{"custom 4.1.25 is allowed on the protected model", ident(protected, "V4.1.20 build 190101"), good, img, verify.Policy{}, nil},
		{"custom V4.1.25 is allowed on the protected model", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Version = "V4.1.25" }), img, verify.Policy{}, nil},
		{"a build inside the version string is refused on the protected model", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Version = "V4.1.25 build 200316" }), img, verify.Policy{}, codes(verify.CodeCustomVersionForbidden)},
		{"standard firmware on the protected model is refused", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Variant = verify.Standard }), img, verify.Policy{}, codes(verify.CodeStandardFirmwareForbidden)},
		{"an unknown variant on the protected model counts as standard", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Variant = "beta" }), img, verify.Policy{}, codes(verify.CodeStandardFirmwareForbidden)},
		{"an empty variant on the protected model counts as standard", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Variant = "" }), img, verify.Policy{}, codes(verify.CodeStandardFirmwareForbidden)},
		{"custom 4.1.26 on the protected model is refused", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Version = "4.1.26" }), img, verify.Policy{}, codes(verify.CodeCustomVersionForbidden)},
		{"allow_downgrade does not open the protected model to standard firmware", ident(protected, "V4.1.25"), with(good, func(r *verify.Release) { r.Variant = verify.Standard; r.Version = "4.1.9" }), img, verify.Policy{AllowDowngrade: true}, codes(verify.CodeStandardFirmwareForbidden)},
		{"a pin of a standard image does not open the protected model", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Variant = verify.Standard }), img, verify.Policy{Pins: map[string][]string{protected: {img.SHA256}}}, codes(verify.CodeStandardFirmwareForbidden)},
		{"a protected model written with spaces still gets the built-in rule", ident("iDS-9632NXI-I8 / 16S", "V4.1.20"), with(good, func(r *verify.Release) { r.Variant = verify.Standard }), img, verify.Policy{}, codes(verify.CodeModelMismatch, verify.CodeStandardFirmwareForbidden)},
		{"a protected model in other case is the protected model", ident("IDS-9632NXI-I8/16S", "V4.1.20"), good, img, verify.Policy{}, nil},
		{"standard firmware on the look-alike /S model is allowed", ident("iDS-9632NXI-I8/S", "V4.1.20"), std, img, verify.Policy{}, nil},
		{"a release for the protected model does not fit the look-alike", ident("iDS-9632NXI-I8/S", "V4.1.20"), good, img, verify.Policy{}, codes(verify.CodeModelMismatch)},
		{"a release for /S does not fit the protected model", ident(protected, "V4.1.20"), std, img, verify.Policy{}, codes(verify.CodeModelMismatch, verify.CodeStandardFirmwareForbidden)},
		{"a device without a model is refused", ident("", "V4.1.20"), std, img, verify.Policy{}, codes(verify.CodeModelMismatch)},
		{"a release without models is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.Models = nil }), img, verify.Policy{}, codes(verify.CodeReleaseIncomplete)},
		{"an unknown variant on another model is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.Variant = "beta" }), img, verify.Policy{}, codes(verify.CodeVariantUnknown)},
		{"an unreadable installed version is refused", ident("iDS-9632NXI-I8/S", "unknown"), std, img, verify.Policy{}, codes(verify.CodeVersionUnparseable)},
		{"an unreadable release version is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.Version = "latest" }), img, verify.Policy{}, codes(verify.CodeVersionUnparseable)},
		{"an installed version below requires is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.MinVersion = "4.1.30" }), img, verify.Policy{}, codes(verify.CodeRequiresNotMet)},
		{"an installed version above requires is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.MaxVersion = "4.1.9" }), img, verify.Policy{}, codes(verify.CodeRequiresNotMet)},
		{"an installed version inside requires is allowed", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.MinVersion, r.MaxVersion = "4.1.9", "V4.1.20" }), img, verify.Policy{}, nil},
		{"an unreadable requires bound is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.MinVersion = "4.x" }), img, verify.Policy{}, codes(verify.CodeVersionUnparseable)},
		{"a downgrade is refused", ident("iDS-9632NXI-I8/S", "V4.1.100"), std, img, verify.Policy{}, codes(verify.CodeDowngradeForbidden)},
		{"a downgrade is allowed when the config allows it", ident("iDS-9632NXI-I8/S", "V4.1.100"), std, img, verify.Policy{AllowDowngrade: true}, nil},
		{"a reinstall is refused", ident("iDS-9632NXI-I8/S", "V4.1.64 build 200101"), std, img, verify.Policy{}, codes(verify.CodeReinstallForbidden)},
		{"a reinstall of custom 4.1.25 is refused on the protected model", ident(protected, "V4.1.25"), good, img, verify.Policy{}, codes(verify.CodeReinstallForbidden)},
		{"a reinstall is allowed when the config allows downgrades", ident(protected, "V4.1.25"), good, img, verify.Policy{AllowDowngrade: true}, nil},
		{"a wrong size is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.Size++ }), img, verify.Policy{}, codes(verify.CodeSizeMismatch)},
		{"a release without a size is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.Size = 0 }), img, verify.Policy{}, codes(verify.CodeReleaseIncomplete)},
		{"a wrong digest is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.SHA256 = other.SHA256 }), img, verify.Policy{}, codes(verify.CodeDigestMismatch)},
		{"an uppercase digest in the release matches", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.SHA256 = strings.ToUpper(r.SHA256) }), img, verify.Policy{}, nil},
		{"a release without a digest is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), with(std, func(r *verify.Release) { r.SHA256 = "" }), img, verify.Policy{}, codes(verify.CodeReleaseIncomplete)},
		{"a digest outside the model's pins is refused", ident(protected, "V4.1.20"), good, img, verify.Policy{Pins: map[string][]string{protected: {other.SHA256}}}, codes(verify.CodeDigestNotPinned)},
		{"a digest among the model's pins is allowed", ident(protected, "V4.1.20"), good, img, verify.Policy{Pins: map[string][]string{" ids-9632nxi-i8/16s": {other.SHA256, strings.ToUpper(img.SHA256)}}}, nil},
		{"an empty pin list allows nothing", ident(protected, "V4.1.20"), good, img, verify.Policy{Pins: map[string][]string{protected: {}}}, codes(verify.CodeDigestNotPinned)},
		{"pins for a look-alike do not apply to the protected model", ident(protected, "V4.1.20"), good, img, verify.Policy{Pins: map[string][]string{"iDS-9632NXI-I8/S": {other.SHA256}}}, nil},
		{"pins for the protected model do not apply to a look-alike", ident("iDS-9632NXI-I8/S", "V4.1.20"), std, img, verify.Policy{Pins: map[string][]string{protected: {other.SHA256}}}, nil},
		{"the vendor's zip is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), releaseFor(zip, std.Models, verify.Standard, "4.1.64"), zip, verify.Policy{}, codes(verify.CodeImageIsZip)},
		{"an encrypted container is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), releaseFor(enc, std.Models, verify.Standard, "4.1.64"), enc, verify.Policy{}, codes(verify.CodeImageEncrypted)},
		{"a malformed image is refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), releaseFor(bad, std.Models, verify.Standard, "4.1.64"), bad, verify.Policy{}, codes(verify.CodeImageMalformed)},
		{"facts without a structure check are refused", ident("iDS-9632NXI-I8/S", "V4.1.20"), std, verify.ImageFacts{Size: img.Size, SHA256: img.SHA256, Format: verify.FormatDigicap}, verify.Policy{}, codes(verify.CodeImageMalformed)},
		{"every reason is reported, not only the first", ident(protected, "V4.1.30"),
			verify.Release{ID: "bad", Models: []string{"iDS-9632NXI-I8/S"}, Version: "4.1.9", Variant: verify.Standard, Size: 1, SHA256: other.SHA256, MinVersion: "5.0"},
			zip, verify.Policy{Pins: map[string][]string{protected: {}}},
			codes(verify.CodeModelMismatch, verify.CodeStandardFirmwareForbidden, verify.CodeDigestNotPinned, verify.CodeRequiresNotMet, verify.CodeDowngradeForbidden,
				verify.CodeSizeMismatch, verify.CodeDigestMismatch, verify.CodeImageIsZip)},
	}
	// These rules are not about the second proof: every case has two
	// signers (TestProtectedNeedsSecondProof covers fewer).
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := verify.DecideImage(tt.id, tt.rel, tt.img, tt.pol, twoSigners)
			if !slices.Equal(d.Codes(), tt.want) {
				t.Fatalf("codes %v, want %v\n%s", d.Codes(), tt.want, d)
			}
			if d.Allowed != (len(tt.want) == 0) {
				t.Fatalf("Allowed = %v with codes %v", d.Allowed, d.Codes())
			}
			for _, r := range d.Reasons {
				if r.Message == "" || !strings.Contains(r.Message, ":") && !strings.Contains(r.Message, "(") {
					t.Errorf("reason %s has no actionable sentence: %q", r.Code, r.Message)
				}
			}
			// Decide agrees with DecideImage on the rules it checks.
			pre := verify.Decide(tt.id, tt.rel, tt.pol, twoSigners)
			for _, c := range pre.Codes() {
				if !d.Has(c) {
					t.Errorf("Decide found %s but DecideImage did not", c)
				}
			}
		})
	}
}

func TestDecisionErr(t *testing.T) {
	ok := verify.Decision{Allowed: true}
	if ok.Err() != nil || ok.String() != "allowed" {
		t.Errorf("allowed decision: %v %q", ok.Err(), ok)
	}
	d := verify.Decide(ident(protected, "V4.1.20"), verify.Release{ID: "std", Models: []string{protected}, Version: "4.1.64", Variant: verify.Standard}, verify.Policy{}, verify.Evidence{})
	err := d.Err()
	var re *verify.RefusalError
	if !errors.Is(err, verify.ErrRefused) || !errors.As(err, &re) || len(re.Reasons) != len(d.Reasons) {
		t.Fatalf("refusal error %v", err)
	}
	if !strings.Contains(err.Error(), "standard_firmware_forbidden: ") {
		t.Errorf("error %q does not name the code", err)
	}
}

// The matrix: nothing but custom 4.1.25 is ever allowed on the protected
// model, whatever the release lists, the installed version or the policy.
func TestProtectedModelMatrix(t *testing.T) {
	img := image(t, testimage.Spec{})
	deviceModels := []string{protected, "ids-9632nxi-i8/16s", "IDS-9632NXI-I8/16S", "  iDS-9632NXI-I8/16S  ", "iDS-9632NXI-I8 /16S", "iDS-9632NXI-I8/16S\t",
		"iDS-9632NXI-I8/S", "iDS-9632NXI-I8/16S-X", "iDS-9632NXI-I8/X", "iDS-9632NXI-I8/X-AI", "iDS-9632NXI-I8/S(C)", "iDS-9632NXI-I8", "iDS-9632NXI-I8/16"}
	releaseModels := [][]string{{protected}, {"iDS-9632NXI-I8/S"}, {protected, "iDS-9632NXI-I8/S", "iDS-9632NXI-I8/X"}, {"IDS-9632NXI-I8/16S "},
		{"iDS-9632NXI-I8/16S-X"}, {"iDS-9632NXI-I8/X-AI", "iDS-9632NXI-I8/S(C)"}}
	variants := []verify.Variant{verify.Custom, verify.Standard, "Custom", "STANDARD", "", "beta"}
	versions := []string{"4.1.25", "V4.1.25", "v4.1.25 build 200316", "4.1.25.0", "4.1.24", "4.1.26", "4.1.9", "4.1.100", "4.62.210", "5.0", "4.1", "garbage"}
	installed := []string{"V4.1.20", "V4.1.25", "V4.1.30", "V4.62.210", "", "x"}
	policies := []verify.Policy{{}, {AllowDowngrade: true}, {AllowDowngrade: true, Pins: map[string][]string{protected: {img.SHA256}}},
		{Pins: map[string][]string{protected: {strings.Repeat("ab", 32)}}}}
	evidences := []verify.Evidence{noSigner, oneSigner, sameTwice, twoSigners}

	var runs, allowedProtected, allowedOthers int
	for _, dm := range deviceModels {
		isProtected := verify.IsProtectedModel(dm)
		for _, rm := range releaseModels {
			for _, vr := range variants {
				for _, ver := range versions {
					for _, inst := range installed {
						for pi, pol := range policies {
							for ei, ev := range evidences {
								id := ident(dm, inst)
								rel := releaseFor(img, rm, vr, ver)
								d := verify.DecideImage(id, rel, img, pol, ev)
								pre := verify.Decide(id, rel, pol, ev)
								runs++
								name := fmt.Sprintf("device %q installed %q, release %v %q %q, policy %d, evidence %d", dm, inst, rm, vr, ver, pi, ei)
								if pre.Allowed != (len(pre.Reasons) == 0) || d.Allowed != (len(d.Reasons) == 0) {
									t.Fatalf("%s: Allowed disagrees with the reasons", name)
								}
								if d.Allowed && !pre.Allowed {
									t.Fatalf("%s: DecideImage allows what Decide refuses", name)
								}
								if !isProtected {
									if d.Has(verify.CodeStandardFirmwareForbidden) || d.Has(verify.CodeCustomVersionForbidden) || d.Has(verify.CodeProtectedNeedsSecondProof) {
										t.Fatalf("%s: look-alike got the protected rule: %v", name, d)
									}
									if d.Allowed {
										allowedOthers++
									}
									continue
								}
								pv, perr := verify.ParseVariant(string(vr))
								isGood := verify.IsProtectedVersion(ver) && perr == nil && pv == verify.Custom
								proven := pi == 2 || ei == 3 // the image's digest pinned, or two distinct signers
								for _, dd := range []verify.Decision{pre, d} {
									if dd.Allowed && !isGood {
										t.Fatalf("%s: ALLOWED a release that is not custom 4.1.25: %v", name, dd)
									}
									if dd.Allowed && !proven {
										t.Fatalf("%s: ALLOWED custom 4.1.25 without a second proof: %v", name, dd)
									}
									if isGood && !proven && !dd.Has(verify.CodeProtectedNeedsSecondProof) {
										t.Fatalf("%s: no protected_needs_second_proof: %v", name, dd)
									}
									if perr != nil || pv != verify.Custom {
										if !dd.Has(verify.CodeStandardFirmwareForbidden) {
											t.Fatalf("%s: no standard_firmware_forbidden: %v", name, dd)
										}
									} else if !isGood && !dd.Has(verify.CodeCustomVersionForbidden) {
										t.Fatalf("%s: no custom_version_forbidden: %v", name, dd)
									}
								}
								if d.Allowed {
									allowedProtected++
								}
							}
						}
					}
				}
			}
		}
	}
	// The matrix must exercise allowed cases on both sides, or it proves nothing.
	if allowedProtected == 0 || allowedOthers == 0 {
		t.Fatalf("the matrix allowed %d protected and %d other cases out of %d: it does not reach the allowed paths", allowedProtected, allowedOthers, runs)
	}
	t.Logf("%d decisions, %d allowed on the protected model, %d on look-alikes", runs, allowedProtected, allowedOthers)
}

// FuzzPolicyInvariant: for any identity, release, image and policy, a device
// whose model is (or looks like) iDS-9632NXI-I8/16S is never allowed
// anything but custom 4.1.25.
func FuzzPolicyInvariant(f *testing.F) {
	img := image(f, testimage.Spec{})
	f.Add(protected, "V4.1.20", protected, "custom", "4.1.25", "", "", false, true, true, true, "")
	f.Add(protected, "V4.1.25", protected, "standard", "4.1.25", "", "", true, true, true, true, "a,b")
	f.Add(" ids-9632NXI-i8/16s", "4.1.9", "iDS-9632NXI-I8/16S", "CUSTOM", "V4.1.25 build 1", "4.0", "5.0", true, true, true, false, "a,b")
	f.Add(protected, "V4.1.20", protected, "custom", "4.1.25.0", "", "", false, true, true, false, "a,b")
	f.Add(protected, "V4.1.20", protected, "custom", "4.1.25", "", "", false, true, true, false, "a,a")
	f.Add("iDS-9632NXI-I8/S", "V4.1.20", "iDS-9632NXI-I8/S", "standard", "4.1.64", "", "", false, true, true, false, "a")
	f.Fuzz(func(t *testing.T, model, inst, relModel, variant, version, minV, maxV string, allowDowngrade, sizeOK, digestOK, pin bool, signers string) {
		rel := verify.Release{ID: "fuzz", Models: []string{relModel, protected}, Version: version, Variant: verify.Variant(variant), MinVersion: minV, MaxVersion: maxV, Size: img.Size, SHA256: img.SHA256}
		if !sizeOK {
			rel.Size++
		}
		if !digestOK {
			rel.SHA256 = strings.Repeat("0", 64)
		}
		pol := verify.Policy{AllowDowngrade: allowDowngrade}
		if pin {
			pol.Pins = map[string][]string{model: {img.SHA256}, relModel: {img.SHA256}}
		}
		id := ident(model, inst)
		ev := verify.Evidence{Signers: strings.Split(signers, ",")}
		distinct := map[string]bool{}
		for _, s := range ev.Signers {
			if s != "" {
				distinct[s] = true
			}
		}
		for _, d := range []verify.Decision{verify.Decide(id, rel, pol, ev), verify.DecideImage(id, rel, img, pol, ev)} {
			if d.Allowed != (len(d.Reasons) == 0) {
				t.Fatalf("Allowed %v with reasons %v", d.Allowed, d.Reasons)
			}
			for _, r := range d.Reasons {
				if !slices.Contains(verify.Codes(), r.Code) || r.Message == "" {
					t.Fatalf("reason %+v has an unknown code or no message", r)
				}
			}
			if !d.Allowed || !(verify.SameModel(model, protected) || verify.IsProtectedModel(model)) {
				continue
			}
			pv, perr := verify.ParseVariant(variant)
			if !verify.IsProtectedVersion(version) || perr != nil || pv != verify.Custom {
				t.Fatalf("allowed %q %q on %q", variant, version, model)
			}
			if len(distinct) < 2 && !(pin && digestOK) {
				t.Fatalf("allowed %q %q on %q with signers %q and no pin of its digest", variant, version, model, signers)
			}
		}
	})
}

func TestConfirmInstall(t *testing.T) {
	rel := verify.Release{ID: "r", Models: []string{protected}, Version: "4.1.25", Build: "build 200316", Variant: verify.Custom}
	before := ident(protected, "V4.1.20")
	after := func(model, version, build string) device.Identity {
		id := ident(model, version)
		id.FirmwareBuild = build
		return id
	}
	tests := []struct {
		name  string
		after device.Identity
		rel   verify.Release
		ok    bool
	}{
		{"the release's version and build confirm the install", after(protected, "V4.1.25", "build 200316"), rel, true},
		{"the release's version without a reported build confirms the install", after(protected, "V4.1.25", ""), rel, true},
		{"a build inside the version string confirms the install on another model", after("DS-7608NI-K2", "V4.1.64 build 200316", ""), verify.Release{Version: "4.1.64", Build: "200316"}, true},
		{"a release without a build confirms on the version alone", after(protected, "V4.1.25", "build 999999"), verify.Release{Version: "4.1.25"}, true},
		{"the protected model reporting a build inside its version is a mismatch", after(protected, "V4.1.25 build 200316", ""), rel, false},
		{"the protected model reporting 4.1.25.0 is a mismatch", after(protected, "V4.1.25.0", ""), rel, false},
		{"the protected model reporting V04.01.25 is a mismatch", after(protected, "V04.01.25", ""), rel, false},
		{"the protected model reporting a padded version is a mismatch", after(protected, " V4.1.25", ""), rel, false},
		{"the protected model reporting 4.1.25 without the V confirms", after(protected, "4.1.25", ""), rel, true},
		{"the old version after the install is a mismatch", after(protected, "V4.1.20", ""), rel, false},
		{"another build of the version is a mismatch", after(protected, "V4.1.25", "build 190101"), rel, false},
		{"a changed model is a mismatch", after("iDS-9632NXI-I8/S", "V4.1.25", ""), rel, false},
		{"an unreadable version is a mismatch", after(protected, "", ""), rel, false},
		{"an unreadable release version is a mismatch", after(protected, "V4.1.25", ""), verify.Release{Version: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := before
			if !verify.IsProtectedModel(tt.after.Model) && !verify.SameModel(tt.after.Model, "iDS-9632NXI-I8/S") {
				b = ident(tt.after.Model, "V4.1.20")
			}
			d := verify.ConfirmInstall(b, tt.after, tt.rel)
			if d.Allowed != tt.ok {
				t.Fatalf("Allowed = %v: %v", d.Allowed, d)
			}
			if !tt.ok && !slices.Equal(d.Codes()[:1], codes(verify.CodePostInstallMismatch)) {
				t.Fatalf("codes %v", d.Codes())
			}
		})
	}
}

// Facts of a real file agree with the policy end to end.
func TestDecideImageOnInspectedFile(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{Size: 100000})
	s := verify.NewImageStream()
	if _, err := bytes.NewReader(b).WriteTo(s); err != nil {
		t.Fatal(err)
	}
	img := s.Facts()
	d := verify.DecideImage(ident(protected, "V4.1.20"), releaseFor(img, []string{protected}, verify.Custom, "4.1.25"), img, verify.Policy{}, twoSigners)
	if !d.Allowed {
		t.Fatal(d)
	}
}

func TestIsProtectedVersion(t *testing.T) {
	for _, v := range []string{"4.1.25", "V4.1.25", "v4.1.25"} {
		if !verify.IsProtectedVersion(v) {
			t.Errorf("IsProtectedVersion(%q) = false, want true", v)
		}
	}
	for _, v := range []string{"4.1.25.0", "04.01.25", "4.01.25", " 4.1.25", "4.1.25 ", "V 4.1.25", "VV4.1.25", "Vv4.1.25", "4.1.25 build 200316", "4.1.25b",
		"4.1.250", "4.1.2", "4.1.26", "4.1", "", "V", "\u00a04.1.25", "4.1.25\n", "4.1.25\x00", "\ufeff4.1.25", "４.1.25"} {
		if verify.IsProtectedVersion(v) {
			t.Errorf("IsProtectedVersion(%q) = true, want false", v)
		}
	}
}

// The second proof (issue 14): a release for the protected model that
// declares custom 4.1.25 is allowed only with its digest pinned, or signed
// by two distinct trusted keys, or both; before the download and after it.
func TestProtectedNeedsSecondProof(t *testing.T) {
	img := image(t, testimage.Spec{})
	std := image(t, testimage.Spec{Variant: "standard", Version: "4.1.64"})
	good := releaseFor(img, []string{protected}, verify.Custom, "4.1.25")
	pin := func(ds ...string) verify.Policy { return verify.Policy{Pins: map[string][]string{protected: ds}} }
	tests := []struct {
		name string
		rel  verify.Release
		img  verify.ImageFacts
		pol  verify.Policy
		ev   verify.Evidence
		pre  []verify.Code // Decide, before the download
		post []verify.Code // DecideImage, after it
	}{
		{"one signer and no pin is refused", good, img, verify.Policy{}, oneSigner,
			codes(verify.CodeProtectedNeedsSecondProof), codes(verify.CodeProtectedNeedsSecondProof)},
		{"no evidence at all is refused", good, img, verify.Policy{}, noSigner,
			codes(verify.CodeProtectedNeedsSecondProof), codes(verify.CodeProtectedNeedsSecondProof)},
		{"two signatures by the same key count once", good, img, verify.Policy{}, sameTwice,
			codes(verify.CodeProtectedNeedsSecondProof), codes(verify.CodeProtectedNeedsSecondProof)},
		{"two distinct signers are a second proof", good, img, verify.Policy{}, twoSigners, nil, nil},
		{"three distinct signers are a second proof", good, img, verify.Policy{}, verify.Evidence{Signers: []string{"c", "a", "b"}}, nil, nil},
		{"a pin of the release's digest is a second proof", good, img, pin(img.SHA256), oneSigner, nil, nil},
		{"a pin written in upper case with spaces is a second proof", good, img, pin(" " + strings.ToUpper(img.SHA256) + " "), oneSigner, nil, nil},
		{"a pin and two signers together are allowed", good, img, pin(img.SHA256), twoSigners, nil, nil},
		{"one signer and a wrong pin is refused", good, img, pin(std.SHA256), oneSigner,
			codes(verify.CodeProtectedNeedsSecondProof, verify.CodeDigestNotPinned), codes(verify.CodeProtectedNeedsSecondProof, verify.CodeDigestNotPinned)},
		{"two signers and a wrong pin are refused by the pin", good, img, pin(std.SHA256), twoSigners,
			codes(verify.CodeDigestNotPinned), codes(verify.CodeDigestNotPinned)},
		{"an empty pin list is no proof", good, img, pin(), oneSigner,
			codes(verify.CodeProtectedNeedsSecondProof, verify.CodeDigestNotPinned), codes(verify.CodeProtectedNeedsSecondProof, verify.CodeDigestNotPinned)},
		// The attack of issue 14: the standard image, signed and declared
		// custom 4.1.25 with its true size and digest.
		{"a standard image declared custom with one signer is refused", releaseFor(std, []string{protected}, verify.Custom, "4.1.25"), std, verify.Policy{}, oneSigner,
			codes(verify.CodeProtectedNeedsSecondProof), codes(verify.CodeProtectedNeedsSecondProof)},
		{"a standard image declared custom with the custom image pinned is refused", releaseFor(std, []string{protected}, verify.Custom, "4.1.25"), std, pin(img.SHA256), oneSigner,
			codes(verify.CodeProtectedNeedsSecondProof, verify.CodeDigestNotPinned), codes(verify.CodeProtectedNeedsSecondProof, verify.CodeDigestNotPinned)},
		{"a pin of the declared digest does not prove a different downloaded image", good, std, pin(img.SHA256), oneSigner,
			nil, codes(verify.CodeSizeMismatch, verify.CodeDigestMismatch, verify.CodeDigestNotPinned)},
		{"a release without a valid digest has no pin proof", func() verify.Release { r := good; r.SHA256 = "x"; return r }(), img, pin("x"), oneSigner,
			codes(verify.CodeProtectedNeedsSecondProof), codes(verify.CodeProtectedNeedsSecondProof, verify.CodeReleaseIncomplete, verify.CodeDigestNotPinned)},
		{"two signers do not open the protected model to standard firmware", releaseFor(std, []string{protected}, verify.Standard, "4.1.64"), std, pin(std.SHA256), twoSigners,
			codes(verify.CodeStandardFirmwareForbidden), codes(verify.CodeStandardFirmwareForbidden)},
		{"two signers do not open the protected model to 4.1.25.0", releaseFor(img, []string{protected}, verify.Custom, "4.1.25.0"), img, pin(img.SHA256), twoSigners,
			codes(verify.CodeCustomVersionForbidden, verify.CodeReinstallForbidden), codes(verify.CodeCustomVersionForbidden, verify.CodeReinstallForbidden)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ident(protected, "V4.1.20")
			if tt.name == "two signers do not open the protected model to 4.1.25.0" {
				id = ident(protected, "V4.1.25")
			}
			pre := verify.Decide(id, tt.rel, tt.pol, tt.ev)
			if !slices.Equal(pre.Codes(), tt.pre) || pre.Allowed != (len(tt.pre) == 0) {
				t.Errorf("Decide: codes %v allowed %v, want %v\n%s", pre.Codes(), pre.Allowed, tt.pre, pre)
			}
			post := verify.DecideImage(id, tt.rel, tt.img, tt.pol, tt.ev)
			if !slices.Equal(post.Codes(), tt.post) || post.Allowed != (len(tt.post) == 0) {
				t.Errorf("DecideImage: codes %v allowed %v, want %v\n%s", post.Codes(), post.Allowed, tt.post, post)
			}
			for _, r := range pre.Reasons {
				if r.Code == verify.CodeProtectedNeedsSecondProof && (!strings.Contains(r.Message, "policy.pins") || !strings.Contains(r.Message, "fwctl sign")) {
					t.Errorf("the advice does not say how to add either proof: %q", r.Message)
				}
			}
		})
	}
	// The look-alike models do not need a second proof.
	look := releaseFor(std, []string{"iDS-9632NXI-I8/S"}, verify.Standard, "4.1.64")
	if d := verify.Decide(ident("iDS-9632NXI-I8/S", "V4.1.20"), look, verify.Policy{}, oneSigner); !d.Allowed {
		t.Errorf("a look-alike was refused: %v", d)
	}
}
