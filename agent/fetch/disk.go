package fetch

import (
	"errors"
	"fmt"
	"syscall"
)

// CheckFreeSpace fails with an *Error (CodeNoSpace) when the file system
// holding dir has less than need bytes available to an unprivileged writer.
func CheckFreeSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return &Error{Op: "check free space", Code: CodeLocalFile,
			Err: fmt.Errorf("statfs %s: %w: check that the state directory exists", dir, err)}
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < need {
		return &Error{Op: "check free space", Code: CodeNoSpace,
			Err: fmt.Errorf("%w in %s: %s free, %s needed: free some space or move the state directory",
				ErrNoSpace, dir, humanBytes(free), humanBytes(need))}
	}
	return nil
}

// isNoSpace reports whether err is a "no space left on device" failure.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
