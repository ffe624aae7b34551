package nvrsim

import (
	"net/http"
	"os"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
)

// BenchmarkUploadPUT measures a streamed PUT upload of a 64 MiB image into
// the simulator (receive to disk, hash, inspect). Bytes allocated per
// operation far below the image size show the body is never held in memory.
func BenchmarkUploadPUT(b *testing.B) {
	const size = 64 << 20
	dir := b.TempDir()
	path := dir + "/digicap.dav"
	if _, _, err := testimage.WriteFile(path, testimage.Spec{Size: size}); err != nil {
		b.Fatal(err)
	}
	srv, err := Start(Config{User: testUser, Password: testPassword, TempDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c := client(testUser, testPassword)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		res, err := putImage(c, srv.URL(), path)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
		b.StopTimer()
		srv.Sim.mu.Lock()
		srv.Sim.st.Pending = nil // ready for the next upload without a reboot
		srv.Sim.mu.Unlock()
		b.StartTimer()
	}
	_ = os.Remove(path)
}
