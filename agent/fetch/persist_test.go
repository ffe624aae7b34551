package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
)

// syncLog records what the Downloader synced, and how big each synced
// file was at that moment.
type syncLog struct {
	mu    sync.Mutex
	names []string
	sizes map[string]int64
	fail  map[string]error
}

func (l *syncLog) sync(f *os.File) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	l.names = append(l.names, f.Name())
	if l.sizes == nil {
		l.sizes = map[string]int64{}
	}
	l.sizes[f.Name()] = fi.Size()
	if err := l.fail[f.Name()]; err != nil {
		return err
	}
	return f.Sync()
}

func TestAProvenImageIsOnDiskBeforeDownloadReturns(t *testing.T) {
	img, sum := testImage(t, imgSize)
	src := filepath.Join(t.TempDir(), "src.dav")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		url   func(t *testing.T) string
		setup func(t *testing.T, path string)
	}{
		{"an image downloaded over http is synced with its directory", func(t *testing.T) string {
			return fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true}).URL
		}, func(*testing.T, string) {}},
		{"an image copied from a file url is synced with its directory", func(*testing.T) string { return "file://" + src }, func(*testing.T, string) {}},
		{"a complete image from an earlier run is synced before it is reported", func(t *testing.T) string {
			return fetchtest.New(t, fetchtest.Options{Body: img}).URL
		}, func(t *testing.T, path string) {
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := destPath(t)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, path)
			d := fastClient(t)
			var log syncLog
			d.syncFile = log.sync
			if _, err := d.Download(context.Background(), Request{URLs: []string{tc.url(t)}, Path: path, Size: imgSize, SHA256: sum}); err != nil {
				t.Fatalf("download: %v", err)
			}
			if len(log.names) != 2 || log.names[0] != path || log.names[1] != filepath.Dir(path) {
				t.Fatalf("synced %v, want the image, then its directory", log.names)
			}
			if log.sizes[path] != imgSize {
				t.Errorf("the image had %d bytes when it was synced, want all %d", log.sizes[path], imgSize)
			}
		})
	}
}

func TestAFailedSyncIsNotReportedAsAProvenImage(t *testing.T) {
	img, sum := testImage(t, imgSize)
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true})
	for _, which := range []string{"image", "directory"} {
		t.Run("a failed sync of the "+which+" is a local file error", func(t *testing.T) {
			path := destPath(t)
			target := path
			if which == "directory" {
				target = filepath.Dir(path)
			}
			d := fastClient(t)
			log := syncLog{fail: map[string]error{target: syscall.EIO}}
			d.syncFile = log.sync
			res, err := d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			if err == nil || CodeOf(err) != CodeLocalFile || IsTransient(err) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("err = %v, want a fatal local_file error wrapping EIO", err)
			}
			if res.Facts.SHA256 != "" {
				t.Errorf("facts = %+v, want none reported", res.Facts)
			}
			// The bytes stay for the next run, which proves them again.
			mustFile(t, path, img)
			d.syncFile = nil
			res, err = d.Download(context.Background(), Request{URLs: []string{srv.URL}, Path: path, Size: imgSize, SHA256: sum})
			if err != nil || !res.Resumed || res.Facts.SHA256 != sum {
				t.Errorf("second download: res %+v, err %v; want the kept image proven again", res, err)
			}
		})
	}
}
