//go:build !unix

package journal

import (
	"errors"
	"io"
	"os"
)

func lockDir(dir string) (*os.File, error) {
	return nil, errors.New("state directory locking needs a unix system")
}

func unlockDir(f *os.File) error { return f.Close() }

// LockDir takes the same lock Open takes (not available here).
func LockDir(dir string) (io.Closer, error) {
	_, err := lockDir(dir)
	return nil, err
}
