package verify

import "testing"

// BenchmarkByteSum measures the entry checksum alone on 1 MiB.
func BenchmarkByteSum(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(buf)))
	var s uint32
	for b.Loop() {
		s += byteSum(buf)
	}
	_ = s
}
