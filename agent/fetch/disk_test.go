package fetch

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
)

func TestCheckFreeSpace(t *testing.T) {
	dir := t.TempDir()
	if err := CheckFreeSpace(dir, 1); err != nil {
		t.Errorf("one byte should fit: %v", err)
	}
	err := CheckFreeSpace(dir, 1<<62)
	if CodeOf(err) != CodeNoSpace || !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "needed") || !strings.Contains(err.Error(), "free") {
		t.Errorf("err = %v, want no_space naming what is free and what is needed", err)
	}
	if err := CheckFreeSpace(filepath.Join(dir, "missing"), 1); CodeOf(err) != CodeLocalFile {
		t.Errorf("err = %v, want local_file for a missing directory", err)
	}
}

// tinyDisk mounts a 1 MiB tmpfs for the test, or skips when it cannot.
func tinyDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func TestDownloadOnADiskThatFillsUp(t *testing.T) {
	disk := tinyDisk(t)
	img, sum := testImage(t, 768<<10)
	filler := filepath.Join(disk, "filler")
	var once sync.Once
	// Something else fills the disk after the free-space check passed.
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, OnGET: func(*http.Request) {
		once.Do(func() {
			if err := os.WriteFile(filler, make([]byte, 512<<10), 0o644); err != nil {
				t.Errorf("fill the disk: %v", err)
			}
		})
	}})
	path := filepath.Join(disk, "digicap.dav")
	req := Request{URLs: []string{srv.URL, srv.URL}, Path: path, Size: int64(len(img)), SHA256: sum}
	_, err := fastClient(t).Download(context.Background(), req)
	if CodeOf(err) != CodeNoSpace || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want no_space", err)
	}
	got, _ := os.ReadFile(path)
	if len(got) >= len(img) || string(got) != string(img[:len(got)]) {
		t.Fatalf("the partial file (%d bytes) should be a resumable prefix", len(got))
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("a full disk should stop at once, not try %d requests", n)
	}

	os.Remove(filler)
	res, err := fastClient(t).Download(context.Background(), req)
	if err != nil {
		t.Fatalf("download after freeing space: %v", err)
	}
	mustFile(t, path, img)
	if !res.Resumed || res.BytesFetched != int64(len(img)-len(got)) {
		t.Errorf("result = %+v, want a resume of the %d missing bytes", res, len(img)-len(got))
	}
}

func TestDownloadRefusesWhenTheDiskIsTooSmall(t *testing.T) {
	disk := tinyDisk(t)
	img, sum := testImage(t, 2<<20)
	srv := fetchtest.New(t, fetchtest.Options{Body: img})
	_, err := fastClient(t).Download(context.Background(), Request{URLs: []string{srv.URL}, Path: filepath.Join(disk, "x.dav"), Size: int64(len(img)), SHA256: sum})
	if CodeOf(err) != CodeNoSpace || len(srv.Requests()) != 0 {
		t.Fatalf("err = %v after %d requests, want no_space before any request", err, len(srv.Requests()))
	}
}
