//go:build !unix

package journal

import (
	"errors"
	"os"
)

func lockDir(dir string) (*os.File, error) {
	return nil, errors.New("state directory locking needs a unix system")
}

func unlockDir(f *os.File) error { return f.Close() }
