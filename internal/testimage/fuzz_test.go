package testimage

import (
	"bytes"
	"testing"
)

// FuzzReadIdentity feeds arbitrary uploads to the reader the simulator
// applies to every image it receives: it never panics, and what it accepts
// names a model and a version.
func FuzzReadIdentity(f *testing.F) {
	f.Add(Bytes(Spec{Model: "iDS-9632NXI-I8/16S", Version: "4.1.25", Variant: "custom", Build: "200316"}))
	f.Add(Bytes(Spec{Corrupt: BadEntryChecksum}))
	f.Add([]byte("model=x\nversion=1\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ReadIdentity(bytes.NewReader(b), int64(len(b)))
		if err == nil && (id.Model == "" || id.Version == "") {
			t.Fatalf("accepted an identity without model or version: %+v", id)
		}
		if id, err := ParseIdentity(b); err == nil && (id.Model == "" || id.Version == "") {
			t.Fatalf("ParseIdentity accepted %+v", id)
		}
	})
}
