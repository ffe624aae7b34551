package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ImageCache is the content-addressed image store a site's recorders share:
// one file per image, named by its SHA-256, so that a release is downloaded
// once for the whole site. Downloading an image takes its write lock (the
// second recorder to need it waits, then finds it complete and proves it
// without the network); proving and uploading it takes a read lock, so
// several recorders may upload one image at once but never while it is
// being written. Files are removed by Collect once no recorder's journal
// still needs them.
type ImageCache struct {
	// Dir holds the images (state_dir/images).
	Dir string

	mu    sync.Mutex
	locks map[string]*sync.RWMutex
}

// Path is where the image with this digest lives.
func (c *ImageCache) Path(sha string) string {
	return filepath.Join(c.Dir, strings.ToLower(sha)+".dav")
}

func (c *ImageCache) lock(sha string) *sync.RWMutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks == nil {
		c.locks = map[string]*sync.RWMutex{}
	}
	sha = strings.ToLower(sha)
	l := c.locks[sha]
	if l == nil {
		l = &sync.RWMutex{}
		c.locks[sha] = l
	}
	return l
}

// Collect removes every image (and partial download) no path in keep
// names: what no recorder's update in progress needs any more.
func (c *ImageCache) Collect(keep map[string]bool) []string {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(c.Dir, e.Name())
		base := p
		for _, suffix := range []string{".part", ".tmp"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if keep[p] || keep[base] {
			continue
		}
		sha := strings.TrimSuffix(filepath.Base(base), ".dav")
		l := c.lock(sha)
		if !l.TryLock() {
			continue // being written or uploaded right now
		}
		if os.Remove(p) == nil {
			removed = append(removed, e.Name())
		}
		l.Unlock()
	}
	return removed
}

// imagePath is where this agent stages the image with this digest: the
// site's shared cache, or its own state directory.
func (a *Agent) imagePath(sha string) string {
	if a.Images != nil {
		return a.Images.Path(sha)
	}
	return filepath.Join(a.Config.StateDir, "images", sha+".dav")
}

// lockImage takes the shared cache's lock of the image (write: download;
// read: prove and upload) and returns its release; a no-op without a cache.
func (a *Agent) lockImage(sha string, write bool) func() {
	if a.Images == nil {
		return func() {}
	}
	l := a.Images.lock(sha)
	if write {
		l.Lock()
		return l.Unlock
	}
	l.RLock()
	return l.RUnlock
}

// removeImage removes a staged image that is incomplete, unreadable or
// changed, so that it is downloaded again. In a site's shared cache it
// first takes the image's write lock: it never removes a file another
// recorder is proving or uploading (it waits for that upload to end). The
// caller must not hold the image's lock.
func (a *Agent) removeImage(sha, path string) error {
	if a.Images != nil {
		l := a.Images.lock(sha)
		l.Lock()
		defer l.Unlock()
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// dropImage removes an image the update no longer needs. In a site's shared
// cache another recorder may still need it: the site collects unneeded
// images after each cycle instead.
func (a *Agent) dropImage(path string) error {
	if a.Images != nil || path == "" {
		return nil
	}
	return os.Remove(path)
}
