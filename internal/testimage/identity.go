package testimage

import (
	"fmt"
	"io"
	"strings"

	"github.com/fwagent/fwagent/verify"
)

// maxIdentitySize caps the fwagent.id entry ReadIdentity accepts.
const maxIdentitySize = 4096

// Identity is what an image's fwagent.id entry says it is.
type Identity struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	Variant string `json:"variant"`
	Build   string `json:"build,omitempty"` // e.g. "200316"; optional
}

// ReadIdentity checks the digicap image in r (size bytes) with
// verify.ParseDigicap and returns the identity in its fwagent.id entry. A
// corrupt, zipped or encrypted image gives verify's error, as a device would
// refuse it.
func ReadIdentity(r io.ReaderAt, size int64) (Identity, error) {
	d, err := verify.ParseDigicap(r, size)
	if err != nil {
		return Identity{}, err
	}
	e, ok := d.Entry(IdentityEntry)
	if !ok {
		return Identity{}, errNoIdentity
	}
	if e.Length > maxIdentitySize {
		return Identity{}, fmt.Errorf("the fwagent.id entry is %d bytes, over %d: the image was not built by testimage", e.Length, maxIdentitySize)
	}
	b := make([]byte, e.Length)
	if n, err := r.ReadAt(b, int64(e.Offset)); n < len(b) {
		return Identity{}, fmt.Errorf("read the fwagent.id entry: %w", err)
	}
	return ParseIdentity(b)
}

// ParseIdentity parses the key=value lines of a fwagent.id entry. model and
// version are required; unknown keys are ignored.
func ParseIdentity(b []byte) (Identity, error) {
	var id Identity
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Identity{}, fmt.Errorf("fwagent.id line %d is %q, not key=value", i+1, line)
		}
		switch k {
		case "model":
			id.Model = v
		case "version":
			id.Version = v
		case "variant":
			id.Variant = v
		case "build":
			id.Build = v
		}
	}
	if id.Model == "" || id.Version == "" {
		return Identity{}, fmt.Errorf("fwagent.id lacks a model or version line: got %q", b)
	}
	return id, nil
}
