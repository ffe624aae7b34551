//go:build linux || darwin || freebsd

package support

import "syscall"

// freeBytes returns the bytes available to unprivileged users on the file
// system holding path, or -1 when unknown.
func freeBytes(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return -1
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize))
}
