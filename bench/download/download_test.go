package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/internal/testimage"
)

const benchSize = 64 << 20

func benchServer(b *testing.B) (url, sum string, size int64) {
	b.Helper()
	src := filepath.Join(b.TempDir(), "served.dav")
	size, sum, err := testimage.WriteFile(src, testimage.Spec{Size: benchSize})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(handler(src))
	b.Cleanup(srv.Close)
	return srv.URL + "/image.dav", sum, size
}

// BenchmarkPlainDownload is the baseline: GET and io.Copy to a file.
func BenchmarkPlainDownload(b *testing.B) {
	url, _, size := benchServer(b)
	dst := filepath.Join(b.TempDir(), "out.dav")
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		os.Remove(dst)
		if _, err := plainDownload(url, dst, size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchDownload is fwagent's download with hashing and the digicap check.
func BenchmarkFetchDownload(b *testing.B) {
	url, sum, size := benchServer(b)
	dst := filepath.Join(b.TempDir(), "out.dav")
	d := &fetch.Downloader{Client: fetch.NewHTTPClient(fetch.ClientOptions{}).StandardClient()}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		os.Remove(dst)
		if _, err := d.Download(context.Background(), fetch.Request{URLs: []string{url}, Path: dst, Size: size, SHA256: sum}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRunPrintsTheRatioAndThePollCost(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-size", "1048576", "-runs", "1", "-dir", t.TempDir()}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ratio fwagent/plain", "unchanged-manifest poll: not modified true, 1 request(s)"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
