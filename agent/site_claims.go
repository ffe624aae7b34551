package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/fwagent/fwagent/device"
)

// preIdentity is what the site's identify-all pass learnt about a recorder
// just before its cycle: the cycle uses it instead of asking again.
type preIdentity struct {
	id  device.Identity
	err error
}

func (a *Agent) setPre(p *preIdentity) {
	a.mu.Lock()
	a.pre = p
	a.mu.Unlock()
}

// takePre returns and forgets the identify-all pass's result.
func (a *Agent) takePre() *preIdentity {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pre
	a.pre = nil
	return p
}

// recorderKey is what tells one recorder from another: model and serial
// ("" without a serial).
func recorderKey(id device.Identity) string {
	serial := strings.TrimSpace(id.Serial)
	if serial == "" {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(id.Model)) + "\x00" + serial
}

// lastIdentity is the identity the recorder last answered with (its
// identity.json), or the zero Identity.
func (a *Agent) lastIdentity() device.Identity {
	var id device.Identity
	if b, err := os.ReadFile(filepath.Join(a.Config.StateDir, identityFile)); err == nil {
		_ = json.Unmarshal(b, &id)
	}
	return id
}

// inProgressKey is the recorder key of the update in progress in a's
// journal ("" when none): the identity recorded before its install, else
// the recorder's last identity.
func (a *Agent) inProgressKey() string {
	if a.Journal == nil {
		return ""
	}
	u := a.Journal.State().Current
	if u == nil {
		return ""
	}
	var before device.Identity
	if len(u.Before) > 0 && json.Unmarshal(u.Before, &before) == nil {
		if k := recorderKey(before); k != "" {
			return k
		}
	}
	return recorderKey(a.lastIdentity())
}

// identifyAll asks every selected recorder who it is before any of their
// cycles starts, and decides, for each recorder several entries of
// devices: reach, which entry updates it: the entry whose journal holds an
// update in progress of that recorder (earliest in the file if several),
// else the entry earliest in the file. The others fail with
// duplicate_recorder before any step touches the recorder. The decision
// depends only on the config, the journals and the answers, so it is the
// same after a restart, and an update in progress is always finished by
// the entry that started it.
//
// A recorder not selected (--device) is not asked: its last identity
// stands for it. A daemon never repeats a login the recorder refused.
func (s *Site) identifyAll(ctx context.Context, mode Mode, agents []*Agent, workers int) {
	results := make([]*preIdentity, len(s.Agents))
	free := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, a := range s.Agents {
		if !slices.Contains(agents, a) || a.Device == nil {
			continue
		}
		if mode == ModeUpdate && a.credentialsRefused() != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			free <- struct{}{}
			defer func() { <-free }()
			id, err := a.Device.Identify(ctx)
			results[i] = &preIdentity{id: id, err: err}
		}()
	}
	wg.Wait()

	type candidate struct {
		i          int
		inProgress bool
	}
	shown := map[string]string{} // key -> the model as a recorder spelt it
	var keys []string
	cands := map[string][]candidate{}
	add := func(k string, c candidate) {
		if k == "" {
			return
		}
		if _, ok := cands[k]; !ok {
			keys = append(keys, k)
			if r := results[c.i]; r != nil && r.err == nil && recorderKey(r.id) == k {
				shown[k] = r.id.Model
			}
		}
		cands[k] = append(cands[k], c)
	}
	for i, a := range s.Agents {
		jk := a.inProgressKey()
		add(jk, candidate{i, true})
		ak := ""
		switch r := results[i]; {
		case r != nil && r.err == nil:
			ak = recorderKey(r.id)
		case r == nil && !slices.Contains(agents, a):
			ak = recorderKey(a.lastIdentity())
		}
		if ak != jk {
			add(ak, candidate{i, false})
		}
	}
	claims := map[string]string{}
	lost := map[int]error{}
	for _, k := range keys {
		cs := cands[k]
		w := cs[0]
		for _, c := range cs {
			if c.inProgress && (!w.inProgress || c.i < w.i) {
				w = c
			} else if !w.inProgress && c.i < w.i {
				w = c
			}
		}
		winner := s.Agents[w.i].DeviceName()
		claims[k] = winner
		why := "it comes first in devices:"
		if w.inProgress {
			why = "its journal holds an update in progress of that recorder"
		}
		model, serial, _ := strings.Cut(k, "\x00")
		if m := shown[k]; m != "" {
			model = m
		}
		for _, c := range cs {
			if c.i != w.i && lost[c.i] == nil {
				lost[c.i] = failed(classDevice, CodeDuplicateRecorder, fmt.Errorf("recorder %s reaches the recorder with serial %s (%s), like recorder %s, which updates it (%s): two entries of devices: reach one recorder; remove one of them (this one is not updated meanwhile)",
					s.Agents[c.i].DeviceName(), serial, model, winner, why))
			}
		}
	}
	s.mu.Lock()
	s.claims = claims
	s.mu.Unlock()
	for i, a := range s.Agents {
		if !slices.Contains(agents, a) {
			continue
		}
		switch {
		case lost[i] != nil:
			a.setPre(&preIdentity{err: lost[i]})
		case results[i] != nil:
			a.setPre(results[i])
		}
	}
}

// claim records that device answered as id during its cycle, refusing an
// identity the site gave to another recorder.
func (s *Site) claim(device string, id device.Identity) error {
	key := recorderKey(id)
	if key == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims == nil {
		s.claims = map[string]string{}
	}
	if other, ok := s.claims[key]; ok && other != device {
		return fmt.Errorf("recorder %s answers as %s serial %s, like recorder %s, which updates it: two entries of devices: reach one recorder; remove one of them (this one is not updated meanwhile)", device, id.Model, strings.TrimSpace(id.Serial), other)
	}
	for k, d := range s.claims {
		if d == device {
			delete(s.claims, k)
		}
	}
	s.claims[key] = device
	return nil
}
