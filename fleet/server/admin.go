package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/reports"
)

// MaxAdminBody bounds an admin request body (an import of an old reports
// file may be large).
const MaxAdminBody = 256 << 20

// maxCauseLen bounds a pause cause, in bytes: every check-in answer
// carries the cause of every paused release, in at most fleet.MaxReply.
const maxCauseLen = 256

// checkParam checks a parameter of an admin request (a serial or release
// id in the path, a query value, a pause cause) with the rules of the
// agents' messages (fleet.CheckString). Unchecked, a NUL byte or invalid
// UTF-8 would reach PostgreSQL, which refuses it, and the request would be
// answered 503 "database unavailable" instead of 400.
func checkParam(name, v string, max int) error {
	err := fleet.CheckString(name, v, max)
	if ie := (*fleet.InvalidError)(nil); errors.As(err, &ie) {
		return fmt.Errorf("%s %s", ie.Field, ie.Problem)
	}
	return err
}

// serialList trims and checks the serials of an approve or forget
// request, skipping empty ones.
func serialList(raw []string) ([]string, error) {
	out := make([]string, 0, len(raw))
	for i, sn := range raw {
		sn = strings.TrimSpace(sn)
		if sn == "" {
			continue
		}
		if err := checkParam(fmt.Sprintf("serials[%d]", i), sn, fleet.MaxIDLen); err != nil {
			return nil, err
		}
		out = append(out, sn)
	}
	return out, nil
}

// DeviceJSON is a device as the admin API lists it.
type DeviceJSON struct {
	Serial         string    `json:"serial"`
	State          string    `json:"state"`
	Enrolment      string    `json:"enrolment"`
	KeyID          string    `json:"key_id,omitempty"`
	Model          string    `json:"model,omitempty"`
	Firmware       string    `json:"firmware,omitempty"`
	DeviceName     string    `json:"device_name,omitempty"`
	Site           string    `json:"site,omitempty"`
	Step           string    `json:"step,omitempty"`
	ReleaseID      string    `json:"release_id,omitempty"`
	Progress       int       `json:"progress,omitempty"`
	LastResult     string    `json:"last_result,omitempty"`
	LastCode       string    `json:"last_code,omitempty"`
	LastReleaseID  string    `json:"last_release_id,omitempty"`
	QueueDepth     int       `json:"queue_depth,omitempty"`
	AgentVersion   string    `json:"agent_version,omitempty"`
	ManifestSerial uint64    `json:"manifest_serial,omitempty"`
	Groups         []string  `json:"groups,omitempty"`
	LastSeen       time.Time `json:"last_seen,omitzero"`
	FirstSeen      time.Time `json:"first_seen,omitzero"`
}

// ToJSON converts a device for the API at now.
func ToJSON(d fleet.Device, now time.Time) DeviceJSON {
	return DeviceJSON{Serial: d.Serial, State: string(d.StateAt(now)), Enrolment: d.Enrolment, KeyID: d.KeyID,
		Model: d.Model, Firmware: d.Firmware, DeviceName: d.DeviceName, Site: d.Site, Step: d.Step,
		ReleaseID: d.ReleaseID, Progress: d.Progress, LastResult: d.LastResult, LastCode: d.LastCode,
		LastReleaseID: d.LastReleaseID, QueueDepth: d.QueueDepth, AgentVersion: d.AgentVersion,
		ManifestSerial: d.ManifestSerial, Groups: d.Groups, LastSeen: d.LastSeen, FirstSeen: d.FirstSeen}
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := fleet.DeviceFilter{Model: q.Get("model"), ReleaseID: q.Get("release"), Now: s.Now()}
	for _, p := range []struct{ name, v string }{{"query parameter model", f.Model}, {"query parameter release", f.ReleaseID}} {
		if err := checkParam(p.name, p.v, fleet.MaxIDLen); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if st := q.Get("state"); st != "" {
		var err error
		if f.State, err = fleet.ParseState(st); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ds, err := s.store.Devices(r.Context(), f)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	out := make([]DeviceJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, ToJSON(d, f.Now))
	}
	writeJSON(w, http.StatusOK, out)
}

// DeviceHistory is one device with its history.
type DeviceHistory struct {
	Device DeviceJSON    `json:"device"`
	Events []fleet.Event `json:"events"`
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	if err := checkParam("serial", r.PathValue("serial"), fleet.MaxIDLen); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h, err := s.history(r.Context(), r.PathValue("serial"))
	if errors.Is(err, fleet.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown serial "+r.PathValue("serial"))
		return
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) history(ctx context.Context, serial string) (DeviceHistory, error) {
	d, err := s.store.Device(ctx, serial)
	if err != nil {
		return DeviceHistory{}, err
	}
	ev, err := s.store.Events(ctx, serial, 200)
	if err != nil {
		return DeviceHistory{}, err
	}
	return DeviceHistory{Device: ToJSON(d, s.Now()), Events: ev}, nil
}

// ApproveRequest lists the serials to approve.
type ApproveRequest struct {
	Serials []string `json:"serials"`
}

// ApproveResult says what became of each serial.
type ApproveResult struct {
	Approved   []string `json:"approved"`   // a pending key accepted
	Registered []string `json:"registered"` // unknown serial: its first key will be accepted
	Already    []string `json:"already"`    // already enrolled: nothing changed
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, MaxAdminBody)
	if !ok {
		return
	}
	var req ApproveRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON: want {\"serials\": [...]}: "+err.Error())
		return
	}
	serials, err := serialList(req.Serials)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(serials) == 0 {
		writeError(w, http.StatusBadRequest, "no serial to approve")
		return
	}
	who, err := actor(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var res ApproveResult
	err = s.store.Update(r.Context(), func(tx fleet.Tx) error {
		res = ApproveResult{Approved: []string{}, Registered: []string{}, Already: []string{}}
		now := s.Now().UTC()
		devs, err := tx.DevicesForUpdate(r.Context(), serials)
		if err != nil {
			return err
		}
		var put []*fleet.Device
		var events []fleet.Event
		for _, sn := range serials {
			d := devs[sn]
			switch {
			case d == nil:
				d = &fleet.Device{Serial: sn, Enrolment: fleet.EnrolRegistered}
				d.Refresh()
				devs[sn] = d
				res.Registered = append(res.Registered, sn)
				events = append(events, fleet.Event{At: now, Serial: sn, Kind: fleet.EventApproved, Detail: "serial approved by " + who + " before its first check-in: its first key will be enrolled"})
			case d.Enrolment == fleet.EnrolPending:
				d.Enrolment = fleet.EnrolAccepted
				d.Refresh()
				res.Approved = append(res.Approved, sn)
				events = append(events, fleet.Event{At: now, Serial: sn, Kind: fleet.EventApproved, Detail: "key " + d.KeyID + " approved by " + who})
			default:
				res.Already = append(res.Already, sn)
				continue
			}
			put = append(put, d)
		}
		if err := tx.PutDevices(r.Context(), put); err != nil {
			return err
		}
		return tx.AddEvents(r.Context(), events)
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ForgetResult says what became of each serial.
type ForgetResult struct {
	Forgotten []string `json:"forgotten"` // key unbound: the next key to check in enrols
	Unknown   []string `json:"unknown"`
}

// handleForget unbinds the keys of devices (a recorder replaced or
// reinstalled, with a new key): each serial goes back to "registered" and
// the next key that checks in for it is enrolled. Its history and reports
// stay.
func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, MaxAdminBody)
	if !ok {
		return
	}
	var req ApproveRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "want {\"serials\": [...]} with at least one serial")
		return
	}
	serials, err := serialList(req.Serials)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(serials) == 0 {
		writeError(w, http.StatusBadRequest, "want {\"serials\": [...]} with at least one serial")
		return
	}
	who, err := actor(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var res ForgetResult
	err = s.store.Update(r.Context(), func(tx fleet.Tx) error {
		res = ForgetResult{Forgotten: []string{}, Unknown: []string{}}
		now := s.Now().UTC()
		devs, err := tx.DevicesForUpdate(r.Context(), serials)
		if err != nil {
			return err
		}
		var put []*fleet.Device
		var events []fleet.Event
		for _, sn := range serials {
			d := devs[sn]
			if d == nil {
				res.Unknown = append(res.Unknown, sn)
				continue
			}
			events = append(events, fleet.Event{At: now, Serial: sn, Kind: fleet.EventForgotten, Detail: "key " + d.KeyID + " unbound by " + who + ": the next key to check in is enrolled"})
			d.Enrolment, d.PubKey, d.KeyID, d.CheckInSeq, d.ReportSeq = fleet.EnrolRegistered, nil, "", 0, 0
			d.Refresh()
			put = append(put, d)
			res.Forgotten = append(res.Forgotten, sn)
		}
		if err := tx.PutDevices(r.Context(), put); err != nil {
			return err
		}
		return tx.AddEvents(r.Context(), events)
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ReleaseJSON is a release with its rollout statistics.
type ReleaseJSON struct {
	ID         string            `json:"id"`
	Paused     bool              `json:"paused"`
	PausedAt   time.Time         `json:"paused_at,omitzero"`
	PausedBy   string            `json:"paused_by,omitempty"`
	PauseCause string            `json:"pause_cause,omitempty"`
	Rollout    *manifest.Rollout `json:"rollout,omitempty"`
}

func releaseJSON(r fleet.Release) ReleaseJSON {
	return ReleaseJSON{ID: r.ID, Paused: r.Paused, PausedAt: r.PausedAt, PausedBy: r.PausedBy, PauseCause: r.PauseCause, Rollout: r.Rollout}
}

func (s *Server) handleReleases(w http.ResponseWriter, r *http.Request) {
	rels, err := s.store.Releases(r.Context())
	if err != nil {
		s.unavailable(w, err)
		return
	}
	out := make([]ReleaseJSON, 0, len(rels))
	for _, rel := range rels {
		out = append(out, releaseJSON(rel))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSetRollout records a release's rollout (read from the manifest by
// fwctl) so devices are counted by stage.
func (s *Server) handleSetRollout(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkParam("release id", id, fleet.MaxIDLen); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, ok := readBody(w, r, fleet.MaxBody)
	if !ok {
		return
	}
	var ro manifest.Rollout
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ro); err != nil {
		writeError(w, http.StatusBadRequest, "malformed rollout JSON: "+err.Error()+": send the release's rollout object from the manifest (fwctl fleet rollout)")
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed rollout JSON: data after the rollout object: send one object")
		return
	}
	// The stages decide which devices the auto-pause counts: a rollout no
	// agent would accept is refused, not stored.
	if err := ro.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid rollout for release "+id+": "+err.Error())
		return
	}
	err := s.store.Update(r.Context(), func(tx fleet.Tx) error {
		rel, err := tx.ReleaseForUpdate(r.Context(), id)
		if err != nil && !errors.Is(err, fleet.ErrNotFound) {
			return err
		}
		rel.ID, rel.Rollout = id, &ro
		return tx.PutRelease(r.Context(), rel)
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"release": id})
}

// PauseRequest is the body of a pause or resume.
type PauseRequest struct {
	Cause string `json:"cause"`
}

func (s *Server) handlePause(pause bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := checkParam("release id", id, fleet.MaxIDLen); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		body, ok := readBody(w, r, fleet.MaxBody)
		if !ok {
			return
		}
		var req PauseRequest
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				writeError(w, http.StatusBadRequest, "malformed JSON: want {\"cause\": \"...\"}: "+err.Error())
				return
			}
		}
		if req.Cause == "" {
			req.Cause = "no cause given"
		}
		if err := checkParam("cause", req.Cause, maxCauseLen); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		who, err := actor(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		changed, err := s.resumeOrPause(r.Context(), id, pause, who, req.Cause)
		if err != nil {
			s.unavailable(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"release": id, "paused": pause, "changed": changed})
	}
}

// resumeOrPause is setPaused for the admin API: a resume also forgets the
// auto-pause checks asked for before it (autoQueue.resumed), so that none
// pauses the release again on the reports the operator resumed it on.
func (s *Server) resumeOrPause(ctx context.Context, id string, pause bool, who, cause string) (bool, error) {
	if pause {
		return s.setPaused(ctx, id, true, who, cause)
	}
	s.auto.resumeMu.Lock()
	defer s.auto.resumeMu.Unlock()
	changed, err := s.setPaused(ctx, id, false, who, cause)
	if err == nil {
		s.auto.resumed(id)
	}
	return changed, err
}

// setPaused pauses or resumes a release and logs it; changed is false when
// it already was so (logged all the same).
func (s *Server) setPaused(ctx context.Context, id string, pause bool, who, cause string) (changed bool, err error) {
	err = s.store.Update(ctx, func(tx fleet.Tx) error {
		now := s.Now().UTC()
		rel, err := tx.ReleaseForUpdate(ctx, id)
		if err != nil && !errors.Is(err, fleet.ErrNotFound) {
			return err
		}
		rel.ID = id
		changed = rel.Paused != pause
		rel.Paused = pause
		if pause {
			rel.PausedAt, rel.PausedBy, rel.PauseCause = now, who, cause
		} else {
			rel.PausedAt, rel.PausedBy, rel.PauseCause = time.Time{}, "", ""
		}
		if err := tx.PutRelease(ctx, rel); err != nil {
			return err
		}
		return tx.AddPause(ctx, fleet.PauseEvent{At: now, ReleaseID: id, Paused: pause, Actor: who, Cause: cause})
	})
	if err == nil {
		// This server's agents see it at once: the cached holds go, and a
		// refresh that read the holds before this change does not cache
		// what it read.
		s.holdsGen.Add(1)
		s.holds.Store(nil)
		verb := "resumed"
		if pause {
			verb = "paused"
		}
		s.log.WithField("release", id).WithField("actor", who).WithField("cause", cause).Warn("release " + verb)
	}
	return changed, err
}

// handleReports streams the accepted reports on a release in the reports
// file format (JSON Lines of reports.Record), for fwctl rollout status and
// advance.
func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	if err := checkParam("release id", r.PathValue("id"), fleet.MaxIDLen); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := s.store.Reports(r.Context(), r.PathValue("id"))
	if err != nil {
		s.unavailable(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, rec := range recs {
		_ = enc.Encode(ToRecord(rec))
	}
	_ = bw.Flush()
}

// ImportResult counts what an import stored.
type ImportResult struct {
	Reports int `json:"reports"` // reports stored by this import
	// Already counts the reports an earlier import stored (the same
	// report id): skipped, so that an import run twice, or sent again
	// after a 503, counts nothing twice.
	Already    int      `json:"already_imported"`
	Devices    int      `json:"devices"`    // serials registered by the import
	Duplicates int      `json:"duplicates"` // lines repeating a report id of the file
	Bad        []string `json:"bad,omitempty"`
}

// handleImport stores an old reports file (JSON Lines written by fwctl
// reports serve). Its reports were never signed: they are stored as the
// administrator's evidence (key "import"), each report id once however
// often the file is imported, and their serials registered (never_seen)
// if unknown, so the first key of each still enrols.
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	who, err := actor(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, ok := readBody(w, r, MaxAdminBody)
	if !ok {
		return
	}
	f, err := reports.ParseReports(bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res := ImportResult{Duplicates: f.Duplicates}
	for _, b := range f.Bad {
		res.Bad = append(res.Bad, b.String())
	}
	recs := make([]fleet.ReportRecord, 0, len(f.Records))
	serials := []string{}
	seen := map[string]bool{}
	for _, rec := range f.Records {
		stored := FromRecord(rec)
		if stored.Body, err = encodeReport(stored.Report); err != nil {
			res.Bad = append(res.Bad, fmt.Sprintf("report %s: %v: skipped", rec.Report.ID, err))
			continue
		}
		recs = append(recs, stored)
		if sn := rec.Report.DeviceSerial; sn != "" && !seen[sn] {
			seen[sn] = true
			serials = append(serials, sn)
		}
	}
	err = s.store.Update(r.Context(), func(tx fleet.Tx) error {
		now := s.Now().UTC()
		devs, err := tx.DevicesForUpdate(r.Context(), serials)
		if err != nil {
			return err
		}
		var put []*fleet.Device
		var events []fleet.Event
		for _, sn := range serials {
			if devs[sn] != nil {
				continue
			}
			d := &fleet.Device{Serial: sn, Enrolment: fleet.EnrolRegistered}
			d.Refresh()
			put = append(put, d)
			events = append(events, fleet.Event{At: now, Serial: sn, Kind: fleet.EventImported, Detail: "registered by an import of old reports by " + who})
		}
		res.Devices = len(put)
		if err := tx.PutDevices(r.Context(), put); err != nil {
			return err
		}
		if err := tx.AddEvents(r.Context(), events); err != nil {
			return err
		}
		res.Reports, err = tx.ImportReports(r.Context(), recs)
		res.Already = len(recs) - res.Reports
		return err
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// CountersJSON is the counters answer.
type CountersJSON struct {
	Counters map[string]int64 `json:"counters"`
	States   map[string]int   `json:"states"`
}

func (s *Server) handleCounters(w http.ResponseWriter, r *http.Request) {
	if err := s.FlushCounters(r.Context()); err != nil {
		s.unavailable(w, err)
		return
	}
	c, err := s.store.Counters(r.Context())
	if err != nil {
		s.unavailable(w, err)
		return
	}
	c[fleet.CounterDBErrors] = s.storeErr.Load()
	st, err := s.store.StateCounts(r.Context(), s.Now())
	if err != nil {
		s.unavailable(w, err)
		return
	}
	states := map[string]int{}
	for k, v := range st {
		states[string(k)] = v
	}
	writeJSON(w, http.StatusOK, CountersJSON{Counters: c, States: states})
}
