package verify

import "encoding/binary"

// byteSum returns the sum of b's bytes, wrapping at 32 bits, the checksum
// digicap uses for its entries.
//
// It adds eight bytes at a time (SWAR): each 64-bit word is split into its
// even and odd bytes, which are added into four 16-bit lanes. A lane gains at
// most 2*255 per word, so the lanes are folded into the total every 128
// words, before they can overflow.
func byteSum(b []byte) uint32 {
	const (
		m8     = 0x00FF00FF00FF00FF
		m16    = 0x0000FFFF0000FFFF
		block  = 128 * 8 // bytes per fold
		stride = 32      // bytes per unrolled step
	)
	var total uint64
	for len(b) >= block {
		var acc uint64
		for p := b[:block]; len(p) >= stride; p = p[stride:] {
			w0 := binary.LittleEndian.Uint64(p[0:])
			w1 := binary.LittleEndian.Uint64(p[8:])
			w2 := binary.LittleEndian.Uint64(p[16:])
			w3 := binary.LittleEndian.Uint64(p[24:])
			acc += (w0 & m8) + ((w0 >> 8) & m8) +
				(w1 & m8) + ((w1 >> 8) & m8) +
				(w2 & m8) + ((w2 >> 8) & m8) +
				(w3 & m8) + ((w3 >> 8) & m8)
		}
		acc = (acc & m16) + ((acc >> 16) & m16)
		total += (acc & 0xFFFFFFFF) + (acc >> 32)
		b = b[block:]
	}
	// The tail is under 128 words, so the lanes cannot overflow.
	var acc uint64
	for ; len(b) >= 8; b = b[8:] {
		w := binary.LittleEndian.Uint64(b)
		acc += (w & m8) + ((w >> 8) & m8)
	}
	acc = (acc & m16) + ((acc >> 16) & m16)
	total += (acc & 0xFFFFFFFF) + (acc >> 32)
	for _, c := range b {
		total += uint64(c)
	}
	return uint32(total)
}
