// Package statefile writes fwagent's state files crash-safely: the journal,
// the accepted manifest envelope, the report queue, the audit trail's head,
// the remembered identity and the refused-credentials record. It is the one
// place that knows how: a temporary file in the same directory, fsync,
// rename over the old file (renameio), then fsync of the directory so the
// rename itself survives a power cut. A reader sees the old file or the new
// one, never half of either.
package statefile

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Write replaces path with data, durably (see the package doc).
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, perm, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the renames and removals in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
