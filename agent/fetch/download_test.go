package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
	"github.com/fwagent/fwagent/internal/testimage"
)

const imgSize = 96 << 10

func TestDownloadFetchesAndProvesAnImage(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true})
	d := fastClient(t)
	log, hook := testLogger(t)
	d.Logger = log
	var calls, lastDone int64
	d.Progress = func(done, total int64) {
		calls++
		if done < lastDone || total != imgSize {
			t.Errorf("progress went from %d to %d of %d", lastDone, done, total)
		}
		lastDone = done
	}
	path := destPath(t)
	res, err := d.Download(context.Background(), Request{URLs: []string{srv.URL + "/img"}, Path: path, Size: imgSize, SHA256: sum})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
	if res.Facts.Size != imgSize || res.Facts.SHA256 != sum || res.Resumed || res.BytesFetched != imgSize || res.URL != srv.URL+"/img" {
		t.Errorf("result = %+v", res)
	}
	if lastDone != imgSize || calls == 0 {
		t.Errorf("progress ended at %d after %d calls", lastDone, calls)
	}
	var percents []int
	for _, e := range hook.AllEntries() {
		if e.Message == "downloading image" {
			percents = append(percents, e.Data["percent"].(int))
		}
	}
	if len(percents) == 0 || len(percents) > 10 || percents[len(percents)-1] != 100 {
		t.Errorf("progress logged at %v, want at most every 10%% ending at 100", percents)
	}
}

func TestProgressIsLoggedEveryTenPercent(t *testing.T) {
	log, hook := testLogger(t)
	var calls int
	d := &Downloader{Logger: log, Progress: func(done, total int64) { calls++ }}
	st := &state{d: d, size: 10000}
	st.newSink()
	chunk := make([]byte, 100)
	for i := 0; i < 100; i++ {
		st.feed(chunk)
	}
	var percents []int
	for _, e := range hook.AllEntries() {
		if e.Message == "downloading image" && e.Data["total"] == int64(10000) {
			percents = append(percents, e.Data["percent"].(int))
		}
	}
	if fmt.Sprint(percents) != "[10 20 30 40 50 60 70 80 90 100]" {
		t.Errorf("progress logged at %v, want every 10%%", percents)
	}
	if calls != 100 {
		t.Errorf("progress callback called %d times for 100 half-percent steps", calls)
	}
}

func TestDownloadResumesAfterACutConnectionAtManyOffsets(t *testing.T) {
	img, sum := testImage(t, imgSize)
	offsets := []int64{1, 2, 100, 4095, 4096, 4097, 32 << 10, 48<<10 - 1, 48 << 10, 64<<10 + 17, imgSize - 4096, imgSize - 2, imgSize - 1}
	for i := int64(1); i < 16; i++ {
		offsets = append(offsets, i*imgSize/16+i*7)
	}
	for _, off := range offsets {
		t.Run(fmt.Sprintf("cut at byte %d resumes with the right digest", off), func(t *testing.T) {
			srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, CutAt: []int64{off}})
			path := destPath(t)
			res, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			mustFile(t, path, img)
			if res.Facts.SHA256 != sum || !res.Resumed {
				t.Errorf("result = %+v, want resumed with the right digest", res)
			}
			if limit := imgSize * 11 / 10; res.BytesFetched >= int64(limit) || srv.BytesSent() >= int64(limit) {
				t.Errorf("fetched %d bytes (server sent %d) for a %d byte image", res.BytesFetched, srv.BytesSent(), imgSize)
			}
			var ranged bool
			for _, r := range srv.Requests() {
				ranged = ranged || r.Range == fmt.Sprintf("bytes=%d-", off)
			}
			if !ranged {
				t.Errorf("no request resumed at %d: %+v", off, srv.Requests())
			}
		})
	}
}

func TestDownloadSurvivesSeveralCutsInOneCall(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, CutAt: []int64{1000, 20000, 50000, 90000}})
	d := fastClient(t)
	d.RetryMax = 4
	path := destPath(t)
	res, err := d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
	if res.BytesFetched != imgSize {
		t.Errorf("fetched %d bytes, want exactly %d (each byte once)", res.BytesFetched, imgSize)
	}
}

func TestDownloadResumesAPartialFileFromAnEarlierRun(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true})
	path := destPath(t)
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, img[:imgSize/3], 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
	if !res.Resumed || res.BytesFetched != imgSize-imgSize/3 {
		t.Errorf("result = %+v, want resumed fetching %d bytes", res, imgSize-imgSize/3)
	}
}

func TestDownloadDealsWithWhatIsAlreadyOnDisk(t *testing.T) {
	img, sum := testImage(t, imgSize)
	wrong := append([]byte(nil), img...)
	wrong[imgSize/2] ^= 0xff
	tests := []struct {
		name      string
		existing  []byte
		wantBytes int64
		wantReqs  bool
	}{
		{"a complete correct file costs no request", img, 0, false},
		{"a complete wrong file is downloaded again", wrong, imgSize, true},
		{"a file larger than declared is discarded", append(append([]byte(nil), img...), 1, 2, 3), imgSize, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true})
			path := destPath(t)
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, tc.existing, 0o644)
			res, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			mustFile(t, path, img)
			if res.BytesFetched != tc.wantBytes || (len(srv.Requests()) > 0) != tc.wantReqs {
				t.Errorf("fetched %d bytes in %d requests, want %d bytes", res.BytesFetched, len(srv.Requests()), tc.wantBytes)
			}
		})
	}
}

func TestDownloadRestartsFromZeroWhenTheServerIgnoresRange(t *testing.T) {
	img, sum := testImage(t, imgSize)
	for _, tc := range []struct {
		name string
		opts fetchtest.Options
	}{
		{"a server that advertises ranges but answers 200 has that answer used from offset zero", fetchtest.Options{Body: img, IgnoreRange: true}},
		{"a server without Accept-Ranges gets a plain request that truncates", fetchtest.Options{Body: img}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t, tc.opts)
			path := destPath(t)
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, img[:imgSize/2], 0o644)
			res, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			mustFile(t, path, img)
			if res.Resumed || res.Facts.SHA256 != sum {
				t.Errorf("result = %+v, want a fresh full download", res)
			}
		})
	}
}

func TestDownloadNeverWritesACorruptImage(t *testing.T) {
	img, sum := testImage(t, imgSize)
	half := img[:imgSize/2]
	tests := []struct {
		name     string
		opts     fetchtest.Options
		partial  []byte
		wantCode Code
	}{
		{"a Content-Range starting elsewhere is refused", fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeShift: -10}, half, CodeBadContentRange},
		{"a Content-Range with the wrong total is refused", fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeTotal: imgSize + 1}, half, CodeBadContentRange},
		{"more bytes than declared with a Content-Length are refused", fetchtest.Options{Body: img, AcceptRanges: true, Extra: []byte("xyz")}, nil, CodeSizeMismatch},
		{"more bytes than declared without a Content-Length are refused", fetchtest.Options{Body: img, AcceptRanges: true, Extra: []byte("xyz"), NoContentLength: true}, nil, CodeTooLong},
		{"fewer bytes than declared without a Content-Length are transient", fetchtest.Options{Body: img[:imgSize-5], NoContentLength: true}, nil, CodeNetwork},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t, tc.opts)
			path := destPath(t)
			if tc.partial != nil {
				os.MkdirAll(filepath.Dir(path), 0o755)
				os.WriteFile(path, tc.partial, 0o644)
			}
			_, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			if CodeOf(err) != tc.wantCode {
				t.Fatalf("err = %v (code %q), want code %q", err, CodeOf(err), tc.wantCode)
			}
			got, _ := os.ReadFile(path)
			if len(got) > imgSize || string(got) != string(img[:len(got)]) {
				t.Fatalf("the file on disk (%d bytes) is not a prefix of the image", len(got))
			}
			if tc.partial != nil && len(got) != len(tc.partial) {
				t.Errorf("the partial file changed from %d to %d bytes", len(tc.partial), len(got))
			}
		})
	}
}

func TestDownloadMovesToTheNextMirror(t *testing.T) {
	img, sum := testImage(t, imgSize)
	// Only the stall case gets a short stall timeout: under load a short
	// one would also cut the other cases' requests and retry them.
	tests := []struct {
		name      string
		bad       fetchtest.Options
		stall     time.Duration // 0: fastClient's
		wantCode  Code
		transient bool
	}{
		{"a 404 moves on without retrying", fetchtest.Options{Body: img, Status: []int{404, 404, 404, 404}}, 0, CodeStatus, false},
		{"a stalled server times out and moves on", fetchtest.Options{Body: img, Stalls: 1000}, 100 * time.Millisecond, CodeStalled, true},
		{"a wrong Content-Range moves on", fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeShift: 5}, 0, CodeBadContentRange, false},
		{"a mirror serving other bytes moves on after removing them", fetchtest.Options{Body: append([]byte("X"), img[1:]...)}, 0, CodeDigestMismatch, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := fetchtest.New(t, tc.bad)
			good := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true})
			path := destPath(t)
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, img[:100], 0o644)
			d := fastClient(t)
			if tc.stall > 0 {
				d.StallTimeout = tc.stall
			}
			log, hook := testLogger(t)
			d.Logger = log
			res, err := d.Download(context.Background(), Request{URLs: []string{bad.URL, good.URL}, Path: path, Size: imgSize, SHA256: sum})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			mustFile(t, path, img)
			if res.URL != good.URL {
				t.Errorf("completed from %s, want the second mirror", res.URL)
			}
			var saw bool
			for _, e := range hook.AllEntries() {
				if e.Data["code"] == tc.wantCode && e.Data["url"] == bad.URL {
					saw = true
				}
			}
			if !saw {
				t.Errorf("no log entry with code %s for the bad mirror", tc.wantCode)
			}
			if tc.wantCode == CodeStatus && len(bad.Requests()) > 2 {
				t.Errorf("the 404 mirror got %d requests, want no retries", len(bad.Requests()))
			}
		})
	}
}

func TestDownloadRetriesAStalledServer(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, Stalls: 1})
	d := fastClient(t)
	d.StallTimeout = 50 * time.Millisecond
	path := destPath(t)
	if _, err := d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum}); err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
}

func TestDownloadFailuresAreClassified(t *testing.T) {
	img, sum := testImage(t, imgSize)
	other, _ := testImage(t, imgSize-1)
	other = append(other, 0)
	tests := []struct {
		name      string
		opts      fetchtest.Options
		wantCode  Code
		transient bool
		removed   bool
		wantErr   error
	}{
		{"a digest mismatch is fatal and removes the file", fetchtest.Options{Body: other}, CodeDigestMismatch, false, true, ErrDigestMismatch},
		{"a 404 is fatal", fetchtest.Options{Status: []int{404}}, CodeStatus, false, false, nil},
		{"a 503 that persists is transient", fetchtest.Options{Status: []int{503, 503, 503, 503, 503, 503, 503, 503, 503, 503}}, CodeStatus, true, false, nil},
		{"a stall that persists is transient", fetchtest.Options{Stalls: 100}, CodeStalled, true, false, ErrStalled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Body = append(tc.opts.Body, img[len(tc.opts.Body):]...)
			srv := fetchtest.New(t, tc.opts)
			d := fastClient(t)
			if tc.wantCode == CodeStalled {
				// Only the stall case gets a short stall timeout: under
				// load a slow 503 must not be taken for a stall.
				d.StallTimeout = 30 * time.Millisecond
			}
			path := destPath(t)
			_, err := d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != tc.wantCode || fe.Transient != tc.transient {
				t.Fatalf("err = %#v, want code %s transient %v", err, tc.wantCode, tc.transient)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.wantErr)
			}
			if tc.removed {
				mustNotExist(t, path)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("message %q should start lowercase", msg)
			}
		})
	}
}

func TestDownloadHonoursCancellation(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, Stalls: 100})
	ctx, cancel := context.WithCancel(context.Background())
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	})
	_, err := fastClient(t).Download(ctx, Request{URLs: []string{srv.URL, srv.URL}, Path: destPath(t), Size: imgSize, SHA256: sum})
	if CodeOf(err) != CodeCanceled {
		t.Fatalf("err = %v, want code canceled", err)
	}
}

func TestDownloadCopiesFileURLs(t *testing.T) {
	img, sum := testImage(t, imgSize)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.dav")
	short := filepath.Join(dir, "short.dav")
	bad := filepath.Join(dir, "bad.dav")
	os.WriteFile(good, img, 0o644)
	os.WriteFile(short, img[:100], 0o644)
	wrong := append([]byte(nil), img...)
	wrong[5] ^= 1
	os.WriteFile(bad, wrong, 0o644)
	tests := []struct {
		name     string
		src      string
		wantCode Code
	}{
		{"a good file is copied and proved", good, ""},
		{"a file of the wrong size is refused", short, CodeSizeMismatch},
		{"a file with the wrong digest is refused and the copy removed", bad, CodeDigestMismatch},
		{"a missing file is a local file error", filepath.Join(dir, "none.dav"), CodeLocalFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := destPath(t)
			res, err := fastClient(t).Download(context.Background(), Request{URLs: []string{"file://" + tc.src}, Path: path, Size: imgSize, SHA256: sum})
			if CodeOf(err) != tc.wantCode {
				t.Fatalf("err = %v, want code %q", err, tc.wantCode)
			}
			if tc.wantCode == "" {
				mustFile(t, path, img)
				if res.Facts.SHA256 != sum {
					t.Errorf("facts = %+v", res.Facts)
				}
			} else if tc.wantCode == CodeDigestMismatch {
				mustNotExist(t, path)
			}
		})
	}
}

func TestDownloadRefusesBadRequests(t *testing.T) {
	_, sum := testImage(t, 10)
	tests := []struct {
		name string
		req  Request
	}{
		{"no url", Request{Path: "/tmp/x", Size: 10, SHA256: sum}},
		{"no path", Request{URLs: []string{"http://127.0.0.1:1/"}, Size: 10, SHA256: sum}},
		{"no size", Request{URLs: []string{"http://127.0.0.1:1/"}, Path: "/tmp/x", SHA256: sum}},
		{"a short digest", Request{URLs: []string{"http://127.0.0.1:1/"}, Path: "/tmp/x", Size: 10, SHA256: "abcd"}},
	}
	for _, tc := range tests {
		t.Run("a request with "+tc.name+" is refused", func(t *testing.T) {
			_, err := (&Downloader{}).Download(context.Background(), tc.req)
			if CodeOf(err) != CodeBadRequest {
				t.Fatalf("err = %v, want bad_request", err)
			}
		})
	}
	t.Run("an unsupported scheme is refused", func(t *testing.T) {
		_, err := (&Downloader{}).Download(context.Background(), Request{URLs: []string{"ftp://x/y"}, Path: destPath(t), Size: 10, SHA256: sum})
		if CodeOf(err) != CodeBadRequest {
			t.Fatalf("err = %v, want bad_request", err)
		}
	})
}

func TestDownloadWithABandwidthLimitCompletes(t *testing.T) {
	img, sum := testImage(t, 32<<10)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true})
	d := fastClient(t)
	d.BandwidthLimit = 64 << 20
	path := destPath(t)
	if _, err := d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: int64(len(img)), SHA256: sum}); err != nil {
		t.Fatalf("download: %v", err)
	}
	mustFile(t, path, img)
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-9/10", 5, 9, 10, true},
		{"bytes 5-9/*", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes 05-9/10", 0, 0, 0, false},
		{"items 0-9/10", 0, 0, 0, false},
		{"bytes 0-9/10 trailing", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q parses ok=%v", tc.in, tc.ok), func(t *testing.T) {
			s, e, n, err := parseContentRange(tc.in)
			if (err == nil) != tc.ok || (tc.ok && (s != tc.start || e != tc.end || n != tc.total)) {
				t.Fatalf("got %d-%d/%d err %v", s, e, n, err)
			}
		})
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes */10", "bytes 1-2/3", "bytes -1--2/-3", "bytes 9223372036854775807-0/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if start < 0 || end < start || total <= end {
			t.Fatalf("%q accepted as %d-%d/%d", s, start, end, total)
		}
		if got := fmt.Sprintf("bytes %d-%d/%d", start, end, total); got != s {
			t.Fatalf("%q accepted but reads back as %q", s, got)
		}
	})
}

func FuzzParseRangeRequest(f *testing.F) {
	for _, s := range []string{"", "bytes=0-", "bytes=10-", "bytes=1-2", "bytes=-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		off, ranged, err := parseRangeRequest(s)
		if err == nil && ranged && (off < 0 || fmt.Sprintf("bytes=%d-", off) != s) {
			t.Fatalf("%q accepted as offset %d", s, off)
		}
	})
}

func TestDownloadInspectsTheDigicapStructureInTheSamePass(t *testing.T) {
	img := testimage.Bytes(testimage.Spec{Size: 200 << 10})
	sum := testimage.Digest(img)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, CutAt: []int64{150 << 10}})
	path := destPath(t)
	res, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: int64(len(img)), SHA256: sum})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if res.Facts.Digicap == nil || res.Facts.FormatErr != nil {
		t.Fatalf("facts = %+v, want the digicap structure checked across the resume", res.Facts)
	}
}
