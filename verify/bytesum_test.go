package verify

import (
	"math/rand/v2"
	"testing"
)

func naiveSum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return s
}

func TestByteSumMatchesTheNaiveSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all := make([]byte, 70000)
	for i := range all {
		all[i] = byte(r.Uint32())
	}
	ff := make([]byte, 70000)
	for i := range ff {
		ff[i] = 0xff
	}
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 1023, 1024, 1025, 2048, 4099, 65536, 70000} {
		for name, b := range map[string][]byte{"random": all[:n], "0xff": ff[:n], "unaligned random": all[3 : 3+min(n, len(all)-3)]} {
			if got, want := byteSum(b), naiveSum(b); got != want {
				t.Errorf("byteSum of %d %s bytes = %#x, want %#x", len(b), name, got, want)
			}
		}
	}
}

func FuzzByteSum(f *testing.F) {
	f.Add([]byte("SWKH"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := byteSum(b), naiveSum(b); got != want {
			t.Fatalf("byteSum = %#x, want %#x", got, want)
		}
	})
}
