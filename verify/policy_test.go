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
		{"custom 4.1.25 with a V and a build is allowed on the protected model", ident(protected, "V4.1.20"), with(good, func(r *verify.Release) { r.Version = "V4.1.25 build 200316" }), img, verify.Policy{}, nil},
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
			codes(verify.CodeModelMismatch, verify.CodeStandardFirmwareForbidden, verify.CodeRequiresNotMet, verify.CodeDowngradeForbidden,
				verify.CodeSizeMismatch, verify.CodeDigestMismatch, verify.CodeDigestNotPinned, verify.CodeImageIsZip)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := verify.DecideImage(tt.id, tt.rel, tt.img, tt.pol)
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
			pre := verify.Decide(tt.id, tt.rel, tt.pol)
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
	d := verify.Decide(ident(protected, "V4.1.20"), verify.Release{ID: "std", Models: []string{protected}, Version: "4.1.64", Variant: verify.Standard}, verify.Policy{})
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
	policies := []verify.Policy{{}, {AllowDowngrade: true}, {AllowDowngrade: true, Pins: map[string][]string{protected: {img.SHA256}}}}
	want, _ := verify.ParseVersion("4.1.25")

	var runs, allowedProtected, allowedOthers int
	for _, dm := range deviceModels {
		isProtected := verify.IsProtectedModel(dm)
		for _, rm := range releaseModels {
			for _, vr := range variants {
				for _, ver := range versions {
					for _, inst := range installed {
						for pi, pol := range policies {
							id := ident(dm, inst)
							rel := releaseFor(img, rm, vr, ver)
							d := verify.DecideImage(id, rel, img, pol)
							pre := verify.Decide(id, rel, pol)
							runs++
							name := fmt.Sprintf("device %q installed %q, release %v %q %q, policy %d", dm, inst, rm, vr, ver, pi)
							if pre.Allowed != (len(pre.Reasons) == 0) || d.Allowed != (len(d.Reasons) == 0) {
								t.Fatalf("%s: Allowed disagrees with the reasons", name)
							}
							if d.Allowed && !pre.Allowed {
								t.Fatalf("%s: DecideImage allows what Decide refuses", name)
							}
							if !isProtected {
								if d.Has(verify.CodeStandardFirmwareForbidden) || d.Has(verify.CodeCustomVersionForbidden) {
									t.Fatalf("%s: look-alike got the protected rule: %v", name, d)
								}
								if d.Allowed {
									allowedOthers++
								}
								continue
							}
							v, verr := verify.ParseVersion(ver)
							pv, perr := verify.ParseVariant(string(vr))
							isGood := verr == nil && v.Compare(want) == 0 && perr == nil && pv == verify.Custom
							for _, dd := range []verify.Decision{pre, d} {
								if dd.Allowed && !isGood {
									t.Fatalf("%s: ALLOWED a release that is not custom 4.1.25: %v", name, dd)
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
	f.Add(protected, "V4.1.20", protected, "custom", "4.1.25", "", "", false, true, true, true)
	f.Add(protected, "V4.1.25", protected, "standard", "4.1.25", "", "", true, true, true, true)
	f.Add(" ids-9632NXI-i8/16s", "4.1.9", "iDS-9632NXI-I8/16S", "CUSTOM", "V4.1.25 build 1", "4.0", "5.0", true, true, true, false)
	f.Add("iDS-9632NXI-I8/S", "V4.1.20", "iDS-9632NXI-I8/S", "standard", "4.1.64", "", "", false, true, true, false)
	f.Fuzz(func(t *testing.T, model, inst, relModel, variant, version, minV, maxV string, allowDowngrade, sizeOK, digestOK, pin bool) {
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
		want, _ := verify.ParseVersion("4.1.25")
		for _, d := range []verify.Decision{verify.Decide(id, rel, pol), verify.DecideImage(id, rel, img, pol)} {
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
			v, err := verify.ParseVersion(version)
			pv, perr := verify.ParseVariant(variant)
			if err != nil || v.Compare(want) != 0 || perr != nil || pv != verify.Custom {
				t.Fatalf("allowed %q %q on %q", variant, version, model)
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
		{"a build inside the version string confirms the install", after(protected, "V4.1.25 build 200316", ""), rel, true},
		{"a release without a build confirms on the version alone", after(protected, "V4.1.25", "build 999999"), verify.Release{Version: "4.1.25"}, true},
		{"the old version after the install is a mismatch", after(protected, "V4.1.20", ""), rel, false},
		{"another build of the version is a mismatch", after(protected, "V4.1.25", "build 190101"), rel, false},
		{"a changed model is a mismatch", after("iDS-9632NXI-I8/S", "V4.1.25", ""), rel, false},
		{"an unreadable version is a mismatch", after(protected, "", ""), rel, false},
		{"an unreadable release version is a mismatch", after(protected, "V4.1.25", ""), verify.Release{Version: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := verify.ConfirmInstall(before, tt.after, tt.rel)
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
	d := verify.DecideImage(ident(protected, "V4.1.20"), releaseFor(img, []string{protected}, verify.Custom, "4.1.25"), img, verify.Policy{})
	if !d.Allowed {
		t.Fatal(d)
	}
}
