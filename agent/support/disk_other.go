//go:build !(linux || darwin || freebsd)

package support

// freeBytes is unknown on this platform.
func freeBytes(string) int64 { return -1 }
