package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/device"
)

// In a site's shared cache the image proven immediately before the upload
// is the image uploaded: its read lock is held from install's proof through
// the end of the upload, so no other recorder's download (write lock) or
// removal of a changed image (removeImage, write lock) can touch the file in
// between; it is given back once the upload ended.
func TestTheSharedImageStaysLockedFromTheProofThroughTheUpload(t *testing.T) {
	a, l := tableAgent(t)
	a.Images = &ImageCache{Dir: filepath.Join(a.Config.StateDir, "images")}
	var sha string
	checked, writable := false, false
	a.InstallProgress = func(p device.InstallProgress) {
		if p.Phase != "upload" || checked {
			return
		}
		checked = true
		sha = a.Journal.State().Current.SHA256
		lk := a.Images.lock(sha)
		if writable = lk.TryLock(); writable {
			lk.Unlock()
		}
	}
	out := a.Cycle(context.Background(), ModeUpdateNow)
	if out.Result != ResultInstalled {
		t.Fatalf("%s %v %s, want installed", out.Result, out.Codes, out.Message)
	}
	if !checked {
		t.Fatal("no upload progress was reported")
	}
	if writable {
		t.Error("another recorder could take the image's write lock during the upload")
	}
	lk := a.Images.lock(sha)
	if !lk.TryLock() {
		t.Fatal("the image's lock is still held after the cycle")
	}
	lk.Unlock()
	if st := l.Sim.State(); st.LastUploadSHA256 != sha {
		t.Errorf("uploaded %s, want the proven %s", st.LastUploadSHA256, sha)
	}
}

// removeImage in a shared cache waits for the readers: it is the only way
// an agent removes a staged image it found changed.
func TestRemovingASharedImageWaitsForItsReaders(t *testing.T) {
	a, _ := tableAgent(t)
	a.Images = &ImageCache{Dir: t.TempDir()}
	const sha = "0000000000000000000000000000000000000000000000000000000000000000"
	path := a.Images.Path(sha)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	lk := a.Images.lock(sha)
	lk.RLock()
	done := make(chan error, 1)
	go func() { done <- a.removeImage(sha, path) }()
	// While the reader holds the lock the file must stay; the remover can
	// only finish after the reader let go.
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("removed while a reader held it: %v", err)
	}
	lk.RUnlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("not removed after the reader let go: %v", err)
	}
}
