package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/redact"
)

// stateDownload downloads the image, hashing as it writes (-> stateVerify).
// A server that misbehaves is not evidence against the release: the next
// mirror is tried, then the next cycle resumes the download. Only bytes
// every mirror agrees on that contradict the signed size or SHA-256
// quarantine the release.
var stateDownload = &state{
	name:    string(journal.StepDownload),
	journal: journal.StepDownload,
	run:     (*cycle).download,
	retries: "each mirror in order; the Downloader retries each GET download.retry_max times, resuming the partial file (docs/reference/retries.md)",
	failures: failureTable{
		classUnavailable: nextCycle,
		classServer:      nextCycle,
		classLocal:       nextCycle,
		classImage:       quarantine,
		classBroken:      quarantine,
	},
}

// download fetches the image into the state directory.
func (c *cycle) download(ctx context.Context) (*state, error) {
	a := c.a
	u := c.current()
	have := int64(0)
	if fi, err := os.Stat(u.ImagePath); err == nil && fi.Size() <= u.Size {
		have = fi.Size()
	}
	if err := os.MkdirAll(filepath.Dir(u.ImagePath), 0o700); err != nil {
		return nil, failed(classLocal, CodeInternal, fmt.Errorf("create the image folder: %w", err))
	}
	if err := fetch.CheckFreeSpace(filepath.Dir(u.ImagePath), u.Size-have+a.Config.Download.FreeSpaceMargin); err != nil {
		return nil, failed(classLocal, CodeNoSpace, err)
	}
	urls := c.release.Image.URLs
	if a.OfflineDir != "" {
		urls = offlineImageURLs(a.OfflineDir, urls)
	}
	unlock := a.lockImage(u.SHA256, true)
	defer unlock()
	res, err := a.Downloader.Download(ctx, fetch.Request{URLs: urls, Path: u.ImagePath, Size: u.Size, SHA256: u.SHA256})
	if a.Metrics != nil {
		a.Metrics.AddDownloadBytes(res.BytesFetched)
	}
	if err != nil {
		if f := classify(err); f.class == classServer && f.fatal {
			// A server that answered wrongly (not merely slowly) is not
			// trusted with the bytes it sent before either: the next try
			// starts from zero, so no byte of a lying server stays staged.
			if rerr := os.Remove(u.ImagePath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				c.log.WithError(rerr).Warn("could not remove the partial image")
			}
		}
		return nil, err
	}
	c.facts = res.Facts
	c.log.WithFields(logrus.Fields{"bytes": res.Facts.Size, "fetched": res.BytesFetched, "resumed": res.Resumed, "url": redact.URL(res.URL)}).Info("image downloaded")
	_ = a.Journal.Update(func(s *journal.State) error {
		if s.Current != nil {
			s.Current.Bytes = res.Facts.Size
		}
		return nil
	})
	return stateVerify, nil
}

// downloadAgain sends the update back to the download step (the staged
// image is removed and no longer counts as verified) and ends this cycle
// with err; no attempt is counted.
func (c *cycle) downloadAgain(err error) error {
	u := c.current()
	if rerr := c.a.removeImage(u.SHA256, u.ImagePath); rerr != nil {
		c.log.WithError(rerr).Warn("could not remove the staged image")
	}
	if jerr := c.a.Journal.Update(func(s *journal.State) error {
		s.Current.Step = journal.StepDownload
		s.Current.Verified = false
		return nil
	}); jerr != nil {
		return failed(classLocal, CodeInternal, jerr)
	}
	c.log.Warn(err.Error())
	return failed(classChanged, CodeStagedImageChanged, err)
}

// offlineImageURLs maps each image URL to the file of the same base name in
// dir: an offline folder holds the manifest and the images side by side.
func offlineImageURLs(dir string, urls []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, raw := range urls {
		name := raw
		if u, err := url.Parse(raw); err == nil {
			name = u.Path
		}
		name = path.Base(name)
		if seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, "file://"+filepath.Join(dir, name))
	}
	return out
}
