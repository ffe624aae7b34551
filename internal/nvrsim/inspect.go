package nvrsim

import (
	"fmt"
	"os"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

// maxIdentityEntry caps the fwagent.id entry the simulator reads.
const maxIdentityEntry = 4096

// InspectImage checks the digicap.dav image at path (size bytes) as a
// recorder would (verify.ParseDigicap: header, checksums, bounds) and reads
// the fwagent.id identity entry that internal/testimage writes. An image
// without that entry is structurally fine but unidentified: it comes back
// with an empty Model. Any structural defect is an error (the simulator
// answers badFlash).
func InspectImage(path string, size int64) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	d, err := verify.ParseDigicap(f, size)
	if err != nil {
		return Image{}, err
	}
	e, ok := d.Entry(testimage.IdentityEntry)
	if !ok {
		return Image{}, nil
	}
	if e.Length > maxIdentityEntry {
		return Image{}, fmt.Errorf("the %s entry is %d bytes, over %d", testimage.IdentityEntry, e.Length, maxIdentityEntry)
	}
	b := make([]byte, e.Length)
	if _, err := f.ReadAt(b, int64(e.Offset)); err != nil {
		return Image{}, fmt.Errorf("read the %s entry: %w", testimage.IdentityEntry, err)
	}
	id, err := testimage.ParseIdentity(b)
	if err != nil {
		return Image{}, err
	}
	return Image{Model: id.Model, Version: id.Version, Variant: id.Variant, Build: id.Build}, nil
}
