package manifest

import "github.com/fwagent/fwagent/verify"

// Target is the safety policy's view of r: what package verify needs to
// decide whether this release may go on a device. Slices are copied, so the
// policy cannot change the manifest.
func (r Release) Target() verify.Release {
	t := verify.Release{
		ID:      r.ID,
		Models:  append([]string(nil), r.Models...),
		Version: r.Version,
		Build:   r.Build,
		Variant: verify.Variant(r.Variant),
		Size:    r.Image.Size,
		SHA256:  r.Image.SHA256,
	}
	if r.Requires != nil {
		t.MinVersion, t.MaxVersion = r.Requires.MinVersion, r.Requires.MaxVersion
	}
	return t
}
