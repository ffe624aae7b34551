package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/statefile"
)

// siteFailuresFile holds, in a site's state_dir, the failed installs that
// count towards install.stop_after_failures, so a restart does not give a
// failing release another round of recorders.
const siteFailuresFile = "site-failures.json"

// siteFailures is the content of siteFailuresFile.
type siteFailures struct {
	// Serial is the highest manifest serial the site has seen; a higher
	// one forgets the failures.
	Serial int64 `json:"serial"`
	// Releases lists, per release id, the recorders whose install of it
	// failed.
	Releases map[string][]string `json:"releases"`
}

func loadSiteFailures(dir string) (siteFailures, error) {
	f := siteFailures{Releases: map[string][]string{}}
	path := filepath.Join(dir, siteFailuresFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil && f.Serial < 0 {
		err = fmt.Errorf("negative serial %d", f.Serial)
	}
	if err != nil {
		return siteFailures{}, fmt.Errorf("read %s (the site's failed installs for install.stop_after_failures): %v: fix or remove the file (removing it forgets the failures)", path, err)
	}
	if f.Releases == nil {
		f.Releases = map[string][]string{}
	}
	return f, nil
}

// newSerialLocked forgets the failures when serial is above every serial
// seen: the integrator published a newer manifest. s.mu is held.
func (s *Site) newSerialLocked(serial int64) {
	if serial <= s.failures.Serial {
		return
	}
	had := len(s.failures.Releases) > 0
	s.failures.Serial = serial
	s.failures.Releases = map[string][]string{}
	if had {
		s.Log.WithFields(logrus.Fields{"device": SiteLogName, "serial": serial}).Info("a newer manifest arrived: the site forgets the failed installs of earlier releases (install.stop_after_failures)")
	}
	s.saveFailuresLocked()
}

// saveFailuresLocked writes the failures to state_dir. s.mu is held.
func (s *Site) saveFailuresLocked() {
	if s.lock == nil {
		return // read-only, or a site of one: nothing is counted
	}
	b, err := json.MarshalIndent(s.failures, "", "  ")
	if err == nil {
		err = statefile.Write(filepath.Join(s.Config.StateDir, siteFailuresFile), b, 0o600)
	}
	if err != nil {
		s.Log.WithError(err).WithField("device", SiteLogName).Error("could not keep the site's failed installs (install.stop_after_failures) in state_dir: a restart forgets them")
	}
}

// agentNamed returns the recorder's agent, or nil.
func (s *Site) agentNamed(name string) *Agent {
	for _, a := range s.Agents {
		if strings.EqualFold(a.DeviceName(), name) {
			return a
		}
	}
	return nil
}
