package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/internal/statefile"
	"github.com/fwagent/fwagent/manifest"
)

// stateFetch fetches and verifies the signed manifest (-> stateDecide). It
// changes nothing the release in progress depends on: a refused or missing
// manifest never ends or quarantines an update in progress.
var stateFetch = &state{
	name:    string(journal.StepFetchManifest),
	run:     (*cycle).fetchManifest,
	retries: "each manifest URL in order; each request by go-retryablehttp (manifest.retry_max)",
	failures: failureTable{
		classUnavailable: nextCycle,
		classServer:      nextCycle,
		classManifest:    nextCycle,
		classLocal:       nextCycle,
	},
}

// fetchManifest fetches the manifest conditionally and verifies it. An
// unchanged manifest costs one request and no signature check.
func (c *cycle) fetchManifest(ctx context.Context) (*state, error) {
	a := c.a
	st := a.Journal.State()
	cond := fetch.Conditional{ETag: st.ManifestETag, LastModified: st.ManifestLastModified}
	if c.mode == ModeCheck {
		cond = fetch.Conditional{}
	}
	urls := a.Config.Manifest.URLs
	if a.OfflineDir != "" {
		urls = []string{"file://" + filepath.Join(a.OfflineDir, offlineManifestName)}
	}
	res, err := a.fetchManifest(ctx, urls, cond)
	if err != nil {
		return nil, err
	}
	if res.NotModified {
		v, err := c.cachedManifest()
		if err != nil {
			return nil, err
		}
		c.verified = v
		c.out.Unchanged = true
		c.out.Serial = v.Manifest.Serial
		c.log.WithField("serial", v.Manifest.Serial).Debug("manifest unchanged")
		return stateDecide, nil
	}
	v, err := manifest.Verify(res.Body, a.Trust, c.verifyOptions(st))
	if err != nil {
		return nil, err
	}
	c.verified = v
	c.out.Serial = v.Manifest.Serial
	if c.mode == ModeCheck {
		return stateDecide, nil
	}
	if err := statefile.Write(a.envelopePath(), res.Body, 0o600); err != nil {
		return nil, failed(classLocal, CodeInternal, fmt.Errorf("keep the accepted manifest: %w", err))
	}
	newSerial := v.Manifest.Serial > st.LastSerial || st.LastDigest == ""
	if err := a.Journal.Update(func(s *journal.State) error {
		s.LastSerial = v.Manifest.Serial
		s.LastDigest = v.Digest
		s.ManifestETag = res.ETag
		s.ManifestLastModified = res.LastModified
		for id, q := range s.Quarantine {
			if v.Manifest.Serial > q.Serial {
				delete(s.Quarantine, id)
				delete(s.Attempts, id)
			}
		}
		return nil
	}); err != nil {
		return nil, failed(classLocal, CodeInternal, err)
	}
	a.mu.Lock()
	a.cached = v
	a.mu.Unlock()
	if newSerial {
		c.log.WithFields(logrus.Fields{"serial": v.Manifest.Serial, "signers": len(v.Signers), "url": redact.URL(res.URL)}).Info("manifest accepted")
		c.audit(audit.Entry{Event: audit.EventManifestAccepted, Message: fmt.Sprintf("serial %d from %s", v.Manifest.Serial, redact.URL(res.URL))})
	}
	return stateDecide, nil
}

func (c *cycle) verifyOptions(st journal.State) manifest.VerifyOptions {
	cfg := c.a.Config.Manifest
	return manifest.VerifyOptions{
		Now:          c.a.now(),
		MaxSkew:      cfg.MaxSkew,
		LastSerial:   st.LastSerial,
		LastDigest:   st.LastDigest,
		MaxImageSize: cfg.MaxImageSize,
	}
}

// cachedManifest returns the manifest a 304 refers to: the one verified
// earlier in this process, or the accepted envelope kept on disk, verified
// once again after a restart. Either way it must not have expired since.
func (c *cycle) cachedManifest() (*manifest.Verified, error) {
	a := c.a
	a.mu.Lock()
	v := a.cached
	a.mu.Unlock()
	st := a.Journal.State()
	if v == nil {
		body, err := os.ReadFile(a.envelopePath())
		if err != nil {
			// Without the accepted envelope the 304 is useless: forget the
			// validators so the next fetch is unconditional.
			_ = a.Journal.Update(func(s *journal.State) error {
				s.ManifestETag, s.ManifestLastModified = "", ""
				return nil
			})
			return nil, failed(classLocal, CodeInternal, fmt.Errorf("the server says the manifest is unchanged but the accepted copy is missing (%v): fetching it again on the next cycle", err))
		}
		v, err = manifest.Verify(body, a.Trust, c.verifyOptions(st))
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.cached = v
		a.mu.Unlock()
	}
	if now := a.now(); !now.Before(v.Manifest.Expires) {
		return nil, &manifest.Error{Code: manifest.CodeExpired, Msg: fmt.Sprintf("manifest expired at %s (device clock %s) and the server still serves it unchanged: publish a fresh manifest", v.Manifest.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return v, nil
}

// offlineManifestName is the signed manifest's file name in an offline folder.
const offlineManifestName = "manifest.json"
