//go:build unix

package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockDir takes a non-blocking exclusive flock on dir/lock and writes our PID
// into it. The lock lives as long as the returned file stays open.
func lockDir(dir string) (*os.File, error) {
	path := dir + "/" + lockFile
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if data, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); perr == nil && pid > 0 {
					holder = "pid " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("%w: %s holds %s: stop that agent first, or give this one another state_dir", ErrLocked, holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		_ = f.Sync()
	}
	return f, nil
}

// unlockDir releases the lock; the PID is cleared so a reader never blames a
// process that has gone.
func unlockDir(f *os.File) error {
	_ = f.Truncate(0)
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return f.Close()
}

// LockDir takes the same lock Open takes, on a folder that is not a
// journal's: a site gateway locks its state_dir so that one gateway serves
// it, while each recorder's journal locks its own folder.
func LockDir(dir string) (io.Closer, error) {
	f, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return dirLock{f}, nil
}

type dirLock struct{ f *os.File }

func (l dirLock) Close() error { return unlockDir(l.f) }
