//go:build !linux

package fetch

// writeback is a no-op where sync_file_range does not exist; persist's
// fsync does all the work.
type writeback struct{}

func (w *writeback) advance(path string, upto int64) {}
func (w *writeback) reset()                          {}
func (w *writeback) close()                          {}
