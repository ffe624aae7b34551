package fetch

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how many downloaded bytes accumulate before the kernel
// is asked to start writing them out.
const writebackChunk = 16 << 20

// writeback asks the kernel to start writing the downloaded bytes to disk
// while the download goes on (sync_file_range, SYNC_FILE_RANGE_WRITE: it
// does not wait), so that the fsync that proves the image durable at the
// end finds little left to write instead of a whole image of dirty pages.
// It is a hint: errors are ignored, and persist's fsync decides.
type writeback struct {
	f    *os.File
	done int64 // bytes already handed to the kernel
}

// advance hands the bytes below upto to the kernel once a chunk is ready.
func (w *writeback) advance(path string, upto int64) {
	if upto-w.done < writebackChunk {
		return
	}
	if w.f == nil {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		w.f = f
	}
	_ = unix.SyncFileRange(int(w.f.Fd()), w.done, upto-w.done, unix.SYNC_FILE_RANGE_WRITE)
	w.done = upto
}

// reset forgets what was handed over (the file starts over).
func (w *writeback) reset() { w.done = 0 }

func (w *writeback) close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}
