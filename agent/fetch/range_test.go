package fetch

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
)

// A server that answers a Range request with 200 and the whole file has
// that body used from offset 0: one GET, the image sent once, not thrown
// away and asked for again.
func TestARangeAnsweredWithTheWholeFileIsUsedFromOffsetZero(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, IgnoreRange: true})
	path := destPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, img[:imgSize/3], 0o644); err != nil {
		t.Fatal(err)
	}
	d := fastClient(t)
	d.RetryMax = 0 // one attempt must be enough
	res, err := d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
	var gets int
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			gets++
			if r.Range == "" {
				t.Errorf("a GET without Range: the partial file was thrown away first")
			}
		}
	}
	if gets != 1 || srv.BytesSent() != imgSize || res.BytesFetched != imgSize {
		t.Errorf("%d GETs, %d bytes sent, %d fetched; want 1 GET and the image sent once (%d bytes)", gets, srv.BytesSent(), res.BytesFetched, imgSize)
	}
	if res.Resumed || res.Facts.SHA256 != sum || res.Facts.Size != imgSize {
		t.Errorf("result = %+v, want a full download from offset 0", res)
	}

	t.Run("a whole-file answer of the wrong length is refused before a byte is written", func(t *testing.T) {
		srv := fetchtest.New(t, fetchtest.Options{Body: img, IgnoreRange: true, Extra: []byte("x")})
		path := destPath(t)
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, img[:imgSize/3], 0o644)
		_, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
		if CodeOf(err) != CodeSizeMismatch {
			t.Fatalf("err = %v (code %s); want size_mismatch", err, CodeOf(err))
		}
	})
}

// Only bytes that every mirror agrees on and that contradict the signed
// size or digest are evidence about the image; a misbehaving server (error
// status, lying Content-Range, cut body, wrong length) never is.
func TestOnlyAgreeingMirrorsAreImageEvidence(t *testing.T) {
	img, sum := testImage(t, imgSize)
	wrong := append([]byte(nil), img...)
	wrong[7] ^= 1
	dir := t.TempDir()
	wrongFile := filepath.Join(dir, "wrong.dav")
	os.WriteFile(wrongFile, wrong, 0o644)
	partial := func(t *testing.T) string {
		p := destPath(t)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, img[:imgSize/2], 0o644)
		return p
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		urls     func(t *testing.T) []string
		path     func(t *testing.T) string
		evidence bool
	}{
		{name: "a 500", urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: img, Status: []int{500, 500, 500, 500}}).URL}
		}},
		{name: "a 404", urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: img, Status: []int{404}}).URL}
		}},
		{name: "a lying Content-Range", path: partial, urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeShift: 1}).URL}
		}},
		{name: "bodies cut on every try", urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: img, CutAt: []int64{10, 20, 30, 40}}).URL}
		}},
		{name: "one mirror with another digest and one answering 503", urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: wrong}).URL, fetchtest.New(t, fetchtest.Options{Body: img, Status: []int{503, 503, 503}}).URL}
		}},
		{name: "a missing file:// mirror", urls: func(*testing.T) []string { return []string{"file://" + filepath.Join(dir, "absent")} }},
		{name: "a canceled context", ctx: canceled, urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: img}).URL}
		}},
		{name: "two mirrors agreeing on another digest", evidence: true, urls: func(t *testing.T) []string {
			return []string{fetchtest.New(t, fetchtest.Options{Body: wrong}).URL, "file://" + wrongFile}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			path := destPath(t)
			if tc.path != nil {
				path = tc.path(t)
			}
			_, err := fastClient(t).Download(ctx, Request{URLs: tc.urls(t), Path: path, Size: imgSize, SHA256: sum})
			if err == nil {
				t.Fatal("no error")
			}
			if got := IsImageEvidence(err); got != tc.evidence {
				t.Errorf("IsImageEvidence(%v) = %v, want %v", err, got, tc.evidence)
			}
		})
	}
}

// download.bandwidth_limit applies to file:// urls as to http(s):// ones.
func TestTheBandwidthLimitPacesFileURLs(t *testing.T) {
	img, sum := testImage(t, imgSize)
	src := filepath.Join(t.TempDir(), "image.dav")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	const rate = 32 << 10 // bytes per second
	l, clock := limiterWithClock(rate)
	d := &Downloader{BandwidthLimit: rate, limiter: l}
	path := destPath(t)
	if _, err := d.Download(context.Background(), Request{URLs: []string{"file://" + src}, Path: path, Size: imgSize, SHA256: sum}); err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
	// Every byte but the first burst waits its turn: (size - burst) / rate.
	want := float64(imgSize-int(l.burst)) / rate
	if got := clock.slept.Seconds(); got < want*0.99 || got > want*1.01 {
		t.Errorf("the limiter paced %.3fs of waiting, want %.3fs", got, want)
	}
}
