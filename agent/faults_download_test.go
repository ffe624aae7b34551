package agent_test

import (
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/manifest"
)

// bigCustom is the custom release with a 1 MiB image, big enough to cut.
var bigCustom = lab.Release{ID: "custom-4.1.25", Version: "4.1.25", Variant: "custom", Size: 1 << 20}

// serveImageFrom republishes the manifest with the release's image URLs
// replaced by urls (a "" entry stands for the lab's own URL).
func (w *world) serveImageFrom(t *testing.T, urls ...string) {
	t.Helper()
	w.republish(t, func(m *manifest.Manifest) {
		rel := &m.Releases[0]
		own := rel.Image.URLs[0]
		rel.Image.URLs = nil
		for _, u := range urls {
			if u == "" {
				u = own
			}
			rel.Image.URLs = append(rel.Image.URLs, u)
		}
	})
}

func (w *world) image(t *testing.T, id string) []byte {
	t.Helper()
	b, err := os.ReadFile(w.lab.ImagePath(id))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDownloadResumesAfterCutsAtManyOffsets(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{bigCustom}})
	w.fast(t, 0)
	img := w.image(t, bigCustom.ID)
	size := int64(len(img))
	var cuts []int64
	for _, f := range []int64{1, 7, 20, 33, 50, 61, 75, 90, 99} {
		cuts = append(cuts, size*f/100)
	}
	cuts = append(cuts, 1, size-1)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, CutAt: cuts})
	w.serveImageFrom(t, srv.URL+"/image.dav")
	outs := w.untilDone(t, agent.ModeUpdateNow, agent.ResultInstalled, 10)
	for _, out := range outs[:len(outs)-1] {
		if !out.Transient {
			t.Errorf("a cut connection gave a non-transient failure: %v %s", out.Codes, out.Message)
		}
	}
	if sent := srv.BytesSent(); float64(sent) >= 1.1*float64(size) {
		t.Fatalf("%d bytes fetched for a %d-byte image with %d cuts: more than 1.1x, the download did not resume", sent, size, len(cuts))
	}
	w.assertInstalledOnce(t)
	if got := w.state().LastUploadSHA256; got != w.lab.Manifest().Releases[0].Image.SHA256 {
		t.Fatalf("the device received sha256 %s", got)
	}
}

func TestLyingImageServersNeverGetACorruptImageInstalled(t *testing.T) {
	cases := []struct {
		name      string
		opts      func(img []byte) fetchtest.Options
		installed bool   // the agent may still finish (starting over from zero)
		code      string // otherwise the failure code
	}{
		{
			name: "a server that ignores Range restarts the download from zero",
			opts: func(img []byte) fetchtest.Options {
				return fetchtest.Options{Body: img, IgnoreRange: true, CutAt: []int64{int64(len(img)) / 2}}
			},
			installed: true,
		},
		{
			name: "a wrong Content-Range is refused",
			opts: func(img []byte) fetchtest.Options {
				return fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeShift: 1, CutAt: []int64{int64(len(img)) / 2}}
			},
			code: "bad_content_range",
		},
		{
			name: "a wrong total in Content-Range is refused",
			opts: func(img []byte) fetchtest.Options {
				return fetchtest.Options{Body: img, AcceptRanges: true, ContentRangeTotal: int64(len(img)) + 1, CutAt: []int64{int64(len(img)) / 2}}
			},
			code: "bad_content_range",
		},
		{
			name: "extra bytes within Content-Length are refused as a size mismatch",
			opts: func(img []byte) fetchtest.Options {
				return fetchtest.Options{Body: img, AcceptRanges: true, Extra: []byte("trailing junk")}
			},
			code: "size_mismatch",
		},
		{
			name: "extra bytes without Content-Length are refused as too long",
			opts: func(img []byte) fetchtest.Options {
				return fetchtest.Options{Body: img, AcceptRanges: true, Extra: []byte("trailing junk"), NoContentLength: true}
			},
			code: "too_long",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, lab.Options{Releases: []lab.Release{bigCustom}})
			w.fast(t, 0)
			srv := fetchtest.New(t, tc.opts(w.image(t, bigCustom.ID)))
			w.serveImageFrom(t, srv.URL+"/image.dav")
			out := w.cycle(t, agent.ModeUpdateNow)
			if tc.installed {
				if out.Result != agent.ResultInstalled {
					t.Fatalf("%s %v (%s), want installed", out.Result, out.Codes, out.Message)
				}
				w.assertInstalledOnce(t)
				if got := w.state().LastUploadSHA256; got != w.lab.Manifest().Releases[0].Image.SHA256 {
					t.Fatalf("the device received sha256 %s", got)
				}
				return
			}
			if out.Result != agent.ResultFailed || !hasCode(out, tc.code) {
				t.Fatalf("%s %v (%s), want failed with %s", out.Result, out.Codes, out.Message, tc.code)
			}
			w.assertUntouched(t)
			w.assertJournalAndAudit(t)
			entries, _ := os.ReadDir(filepath.Join(w.lab.StateDir, "images"))
			for _, e := range entries {
				t.Errorf("bytes from a lying server left in the state directory: %s", e.Name())
			}
		})
	}
}

func TestStalledServerTimesOutAndTheNextMirrorServes(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{bigCustom}})
	w.fast(t, 0)
	w.agent.Downloader.StallTimeout = 100 * time.Millisecond
	stalled := fetchtest.New(t, fetchtest.Options{Body: w.image(t, bigCustom.ID), AcceptRanges: true, Stalls: 1000})
	w.serveImageFrom(t, stalled.URL+"/image.dav", "")
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want installed from the second mirror", out.Result, out.Codes, out.Message)
	}
	gets := 0
	for _, r := range stalled.Requests() {
		if r.Method == http.MethodGet {
			gets++
		}
	}
	if gets == 0 {
		t.Fatal("the stalled mirror was never tried")
	}
	w.assertInstalledOnce(t)
}

func TestDiskFullDuringDownloadKeepsAResumablePartialFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	w := newWorld(t, lab.Options{Releases: []lab.Release{{ID: "custom-4.1.25", Version: "4.1.25", Variant: "custom", Size: 2 << 20}}})
	w.fast(t, 0)
	w.agent.Config.Download.FreeSpaceMargin = 0
	images := filepath.Join(w.lab.StateDir, "images")
	if err := os.MkdirAll(images, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", images, "tmpfs", 0, "size=3m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(images, syscall.MNT_DETACH) })
	filler := filepath.Join(images, "filler")
	img := w.image(t, "custom-4.1.25")
	size := int64(len(img))
	// The free-space check passes; then something else fills the disk
	// while the image arrives.
	var fill sync.Once
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, OnGET: func(*http.Request) {
		fill.Do(func() { _ = os.WriteFile(filler, make([]byte, 3<<19), 0o600) })
	}})
	w.serveImageFrom(t, srv.URL+"/image.dav")
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !hasCode(out, "no_space") || !out.Transient {
		t.Fatalf("%s %v transient=%v (%s), want a transient no_space failure", out.Result, out.Codes, out.Transient, out.Message)
	}
	w.assertUntouched(t)
	w.assertJournalAndAudit(t)
	js := w.agent.Journal.State()
	if js.Current == nil || js.Current.Step != journal.StepDownload {
		t.Fatalf("journal after a full disk: %+v, want the update kept at download", js.Current)
	}
	fi, err := os.Stat(js.Current.ImagePath)
	if err != nil || fi.Size() == 0 || fi.Size() >= size {
		t.Fatalf("partial file: %v, %v; want a partial file to resume", fi, err)
	}
	partial := fi.Size()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := srv.BytesSent()
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want installed once space is back", out.Result, out.Codes, out.Message)
	}
	if got := srv.BytesSent() - before; got > size-partial+size/10 {
		t.Fatalf("%d bytes fetched after freeing space with %d of %d on disk: the partial file was not resumed", got, partial, size)
	}
	w.assertInstalledOnce(t)
}
