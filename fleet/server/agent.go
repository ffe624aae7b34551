package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/fleet"
)

// verdict is what became of one agent message.
type verdict int

const (
	accepted  verdict = iota
	pending           // the key waits for approval
	forged            // a known serial under another key
	replayed          // sequence not above the last accepted
	malformed         // verified but cannot be stored: refused alone (400), not with its batch
)

// job is a verified agent message waiting for its batch: a check-in or
// a report. Both go through the same writers, so a batch is one
// transaction whatever its mix.
type job struct {
	key  ed25519.PublicKey
	ci   *fleet.CheckIn // one of ci and rep is set
	rep  *fleet.Report
	body []byte // rep's JSON as the store keeps it, once storable encoded it
	done chan jobResult
}

func (j *job) serial() string {
	if j.rep != nil {
		return j.rep.DeviceSerial
	}
	return j.ci.Serial
}

type jobResult struct {
	v    verdict
	last uint64 // the last accepted report sequence, for a replayed report
	why  error  // what is wrong with a malformed message
	err  error  // the store failed: nothing of the batch was stored
}

// storable checks what Validate cannot see: that the store can encode the
// message. A report's encoding is kept for the store (encodeReport).
func (j *job) storable() error {
	if j.rep == nil {
		return nil
	}
	body, err := encodeReport(*j.rep)
	j.body = body
	return err
}

// encodeReport encodes r as the store keeps it (fleet.ReportRecord.Body),
// before the transaction: a report that does not encode (a time Validate
// should have refused, an imported line) would fail its transaction, and
// with it every message of the batch or the whole import. The store takes
// the encoding, so each report is encoded once.
func encodeReport(r fleet.Report) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, &fleet.InvalidError{Problem: "the report cannot be stored (" + err.Error() + "): send its fields within the protocol's limits"}
	}
	return body, nil
}

// open reads, verifies and parses an agent message; on failure it answers
// (400, 403, 413) and returns ok false. Nothing is stored for a refused
// message but a counter.
func (s *Server) open(w http.ResponseWriter, r *http.Request, typ string) (payload []byte, key ed25519.PublicKey, ok bool) {
	body, ok := readBody(w, r, fleet.MaxBody)
	if !ok {
		s.count(r.Context(), fleet.CounterOversized)
		return nil, nil, false
	}
	env, err := fleet.ParseEnvelope(body)
	if err != nil {
		s.count(r.Context(), fleet.CounterMalformed)
		writeError(w, http.StatusBadRequest, "the body is not a signed envelope: "+err.Error())
		return nil, nil, false
	}
	payload, key, err = env.Open(typ)
	switch {
	case errors.Is(err, fleet.ErrBadSignature):
		s.count(r.Context(), fleet.CounterBadSignature)
		writeError(w, http.StatusForbidden, err.Error())
		return nil, nil, false
	case errors.Is(err, fleet.ErrWrongType):
		s.count(r.Context(), fleet.CounterWrongType)
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	case err != nil: // a payload that is not base64
		s.count(r.Context(), fleet.CounterMalformed)
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	return payload, key, true
}

// count adds one to a refusal counter. Refusals are counted in memory and
// written every 5 s (and by FlushCounters, before the counters are read):
// a flood of garbage costs no database write per request.
func (s *Server) count(_ context.Context, name string) { s.countN(name, 1) }

// countN adds n to a counter kept in memory until the next flush.
func (s *Server) countN(name string, n int64) {
	if n == 0 {
		return
	}
	s.refusedMu.Lock()
	s.refused[name] += n
	s.refusedMu.Unlock()
}

// takeRefused returns the refusals counted in memory and clears them.
func (s *Server) takeRefused() map[string]int64 {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	if len(s.refused) == 0 {
		return nil
	}
	out := s.refused
	s.refused = map[string]int64{}
	return out
}

// giveBackRefused returns counts that could not be written.
func (s *Server) giveBackRefused(m map[string]int64) {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	for k, v := range m {
		s.refused[k] += v
	}
}

// FlushCounters writes the refusals counted in memory to the store (the
// admin counters, the web page and tests call it before they read).
//
// One flush at a time: a reader's flush that found the map empty while the
// periodic flush was still writing it would read the counters without
// those counts.
func (s *Server) FlushCounters(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	m := s.takeRefused()
	if m == nil {
		return nil
	}
	if err := s.store.Update(ctx, func(tx fleet.Tx) error { return tx.AddCounters(ctx, m) }); err != nil {
		s.giveBackRefused(m)
		return err
	}
	return nil
}

// counterFlusher writes the counted refusals every few seconds until Close.
func (s *Server) counterFlusher() {
	defer s.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.closing:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.FlushCounters(ctx)
			cancel()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.FlushCounters(ctx); err != nil {
			s.storeErr.Add(1)
		}
		cancel()
	}
}

func (s *Server) handleCheckIn(w http.ResponseWriter, r *http.Request) {
	payload, key, ok := s.open(w, r, fleet.TypeCheckIn)
	if !ok {
		return
	}
	ci, err := fleet.ParseCheckIn(payload)
	if err != nil {
		s.count(r.Context(), fleet.CounterMalformed)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, ok := s.enqueue(w, r, &job{ci: &ci, key: key})
	if !ok {
		return
	}
	s.answerCheckIn(w, r, ci, res)
}

// answerCheckIn answers a check-in its batch stored.
func (s *Server) answerCheckIn(w http.ResponseWriter, r *http.Request, ci fleet.CheckIn, res jobResult) {
	switch res.v {
	case forged:
		writeError(w, http.StatusForbidden, fmt.Sprintf("serial %s is enrolled with another key: refused and counted", ci.Serial))
		return
	case replayed:
		writeError(w, http.StatusConflict, fmt.Sprintf("sequence %d is not above the last accepted: a replayed or reordered check-in, ignored and counted", ci.Seq))
		return
	}
	reply := fleet.CheckInReply{Enrolment: fleet.EnrolAccepted, Holds: []fleet.Hold{}, ServerTime: s.Now().UTC()}
	if res.v == pending {
		reply.Enrolment = fleet.EnrolPending
	}
	if s.opt.CheckInInterval > 0 {
		reply.CheckInSeconds = int64(s.opt.CheckInInterval / time.Second)
	}
	holds, err := s.currentHolds(r.Context())
	if err != nil {
		// The check-in is stored; only the holds are missing, and an
		// agent must not go on without them: 503, check in again (the
		// agent signs every try afresh, so the retry is no replay).
		s.unavailableSaying(w, err, "the check-in was stored but the holds could not be read from the fleet database: check in again")
		return
	}
	reply.Holds = holds
	status := http.StatusOK
	if res.v == pending {
		status = http.StatusAccepted
	}
	writeJSON(w, status, reply)
}

// currentHolds returns the paused releases as holds, read at most
// HoldCacheTTL ago.
func (s *Server) currentHolds(ctx context.Context) ([]fleet.Hold, error) {
	fresh := func(now time.Time) []fleet.Hold {
		if c := s.holds.Load(); c != nil && c.gen == s.holdsGen.Load() && now.Sub(c.at) < s.opt.HoldCacheTTL && !now.Before(c.at) {
			return c.holds
		}
		return nil
	}
	if h := fresh(s.Now()); h != nil {
		return h, nil
	}
	// One reader refreshes; the check-ins that found the cache expired at
	// the same moment wait for it instead of each taking a connection.
	s.holdsMu.Lock()
	defer s.holdsMu.Unlock()
	now := s.Now()
	if h := fresh(now); h != nil {
		return h, nil
	}
	gen := s.holdsGen.Load() // before the read: a pause after it outdates what is read
	rels, err := s.store.Held(ctx)
	if err != nil {
		return nil, err
	}
	holds := make([]fleet.Hold, 0, len(rels))
	for _, r := range rels {
		holds = append(holds, fleet.Hold{ReleaseID: r.ID, Reason: "paused by " + r.PausedBy + ": " + r.PauseCause, Since: r.PausedAt})
	}
	s.holds.Store(&holdCache{at: now, gen: gen, holds: holds})
	return holds, nil
}

// enqueue queues a verified message for the writers and waits for its
// batch to commit; on failure it answers (503, or 400 for a message the
// store cannot take) and returns ok false.
func (s *Server) enqueue(w http.ResponseWriter, r *http.Request, j *job) (res jobResult, ok bool) {
	if !s.push(w, r, j) {
		return res, false
	}
	return s.await(w, r, j)
}

// push queues a verified message for the writers; when the queue is full
// or the server closing it answers 503 and returns false.
func (s *Server) push(w http.ResponseWriter, r *http.Request, j *job) bool {
	j.done = make(chan jobResult, 1)
	select {
	case <-s.closing:
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down: nothing was stored, send again later")
		return false
	default:
	}
	// A bounded queue: when the writers are behind by more than the queue
	// holds, answer 503 with Retry-After at once rather than let latency
	// grow without bound (the agent keeps its state or its queued report
	// and sends again later).
	select {
	case s.queue <- j:
	default:
		s.count(r.Context(), fleet.CounterBusy)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the server is busy: nothing was stored, send again later")
		return false
	}
	return true
}

// await waits for a queued message's batch; on failure it answers (503,
// or 400 for a message the store cannot take) and returns ok false.
func (s *Server) await(w http.ResponseWriter, r *http.Request, j *job) (res jobResult, ok bool) {
	select {
	case res = <-j.done:
	case <-r.Context().Done():
		return res, false
	case <-s.stopped:
		// The writers are gone: a job queued after their last batch
		// gets no answer from them.
		select {
		case res = <-j.done:
		default:
			res.err = errShuttingDown
		}
	}
	if errors.Is(res.err, errShuttingDown) {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down: nothing was stored, send it again later")
		return res, false
	}
	if res.err != nil {
		s.unavailable(w, res.err)
		return res, false
	}
	if res.v == malformed {
		writeError(w, http.StatusBadRequest, res.why.Error())
		return res, false
	}
	return res, true
}

// errShuttingDown answers the jobs the writers did not take before they
// ended.
var errShuttingDown = errors.New("the fleet server is shutting down")

// writer stores agent messages in batches: it takes what is queued (up to
// MaxBatch) and stores it in one transaction. Once the server closes it
// stores what is still queued, then ends.
func (s *Server) writer() {
	defer s.wg.Done()
	batch := make([]*job, 0, s.opt.MaxBatch)
	for {
		select {
		case j := <-s.queue:
			batch = append(batch[:0], j)
		case <-s.closing:
			select {
			case j := <-s.queue:
				batch = append(batch[:0], j)
			default:
				return
			}
		}
	fill:
		for len(batch) < s.opt.MaxBatch {
			select {
			case j := <-s.queue:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		results, err := s.storeBatch(ctx, batch)
		cancel()
		// Accepted messages are counted in memory, like refusals, and
		// written with them: one hot counter row updated by every batch
		// would serialise the writers' commits.
		var checkIns, reps, bad int64
		for i, j := range batch {
			switch {
			case results[i].v == malformed:
				bad++
			case err != nil, results[i].v != accepted:
			case j.rep != nil:
				reps++
			default:
				checkIns++
			}
		}
		s.countN(fleet.CounterCheckIns, checkIns)
		s.countN(fleet.CounterReports, reps)
		s.countN(fleet.CounterMalformed, bad)
		for i, j := range batch {
			if err != nil && results[i].v != malformed {
				j.done <- jobResult{err: err}
			} else {
				j.done <- results[i]
			}
		}
	}
}

// enrol finds or creates the device for a message signed with key; it
// returns the device and the verdict so far (accepted, pending or forged).
func (s *Server) enrol(devs map[string]*fleet.Device, serial string, key ed25519.PublicKey, now time.Time, events *[]fleet.Event) (*fleet.Device, verdict) {
	d := devs[serial]
	kid := fleet.KeyID(key)
	switch {
	case d == nil:
		d = &fleet.Device{Serial: serial, PubKey: key, KeyID: kid, Enrolment: fleet.EnrolPending}
		kind, detail := fleet.EventPending, "key "+kid+" waits for approval (fwctl fleet approve "+serial+")"
		if s.opt.Enrolment == EnrolOpen {
			d.Enrolment, kind, detail = fleet.EnrolAccepted, fleet.EventEnrolled, "key "+kid+" enrolled (open enrolment: first key wins)"
		}
		devs[serial] = d
		*events = append(*events, fleet.Event{At: now, Serial: serial, Kind: kind, Detail: detail})
	case d.Enrolment == fleet.EnrolRegistered:
		d.PubKey, d.KeyID, d.Enrolment = key, kid, fleet.EnrolAccepted
		*events = append(*events, fleet.Event{At: now, Serial: serial, Kind: fleet.EventEnrolled, Detail: "key " + kid + " enrolled (serial approved before)"})
	case !bytes.Equal(d.PubKey, key):
		*events = append(*events, fleet.Event{At: now, Serial: serial, Kind: fleet.EventForged, Detail: "a message signed by key " + kid + " claimed this serial (enrolled key " + d.KeyID + "): refused"})
		return d, forged
	}
	if d.Stored == "" {
		// A new device (pending_enrolment, or never_seen until its first
		// check-in), or one that an older server created from a report
		// without a state.
		d.Refresh()
	}
	if d.Enrolment == fleet.EnrolPending {
		return d, pending
	}
	return d, accepted
}

// storeBatch decides and stores a batch of check-ins and reports in one
// transaction, in arrival order. A message the store could not take is
// refused alone (verdict malformed) before the transaction begins: it
// must not fail the batch, and so every other device's message in it.
func (s *Server) storeBatch(ctx context.Context, batch []*job) ([]jobResult, error) {
	results := make([]jobResult, len(batch))
	todo := make([]int, 0, len(batch)) // the messages to store, by index
	for i, j := range batch {
		if err := j.storable(); err != nil {
			results[i] = jobResult{v: malformed, why: err}
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return results, nil
	}
	err := s.store.Update(ctx, func(tx fleet.Tx) error {
		// The store may run this twice (a connection lost before the
		// commit): each run decides every result afresh.
		for _, i := range todo {
			results[i] = jobResult{}
		}
		now := s.Now().UTC()
		serials := make([]string, 0, len(todo))
		seen := map[string]bool{}
		for _, i := range todo {
			if sn := batch[i].serial(); !seen[sn] {
				seen[sn] = true
				serials = append(serials, sn)
			}
		}
		devs, err := tx.DevicesForUpdate(ctx, serials)
		if err != nil {
			return err
		}
		var (
			events  []fleet.Event
			recs    []fleet.ReportRecord
			changed = map[string]*fleet.Device{}
			counts  = map[string]int64{}
		)
		for _, i := range todo {
			j := batch[i]
			d, v := s.enrol(devs, j.serial(), j.key, now, &events)
			if v == forged {
				results[i].v = forged
				counts[fleet.CounterForged]++
				continue
			}
			changed[d.Serial] = d // a new enrolment is stored even if what follows is refused
			if rep := j.rep; rep != nil {
				switch {
				case v == pending:
					results[i].v = pending
					counts[fleet.CounterPending]++
				case rep.Seq <= d.ReportSeq:
					results[i] = jobResult{v: replayed, last: d.ReportSeq}
					counts[fleet.CounterReplayed]++
					events = append(events, fleet.Event{At: now, Serial: d.Serial, Kind: fleet.EventReplay, Detail: fmt.Sprintf("report %s sequence %d not above %d: ignored", rep.ID, rep.Seq, d.ReportSeq)})
				default:
					d.ReportSeq = rep.Seq
					recs = append(recs, fleet.ReportRecord{Received: now, Report: *rep, KeyID: d.KeyID, Body: j.body})
					events = append(events, fleet.Event{At: now, Serial: d.Serial, Kind: fleet.EventReport, Detail: reportLine(*rep)})
					results[i].v = accepted
				}
				continue
			}
			if j.ci.Seq <= d.CheckInSeq {
				results[i].v = replayed
				counts[fleet.CounterReplayed]++
				events = append(events, fleet.Event{At: now, Serial: d.Serial, Kind: fleet.EventReplay, Detail: fmt.Sprintf("check-in sequence %d not above %d: ignored", j.ci.Seq, d.CheckInSeq)})
				continue
			}
			before, beforeStep, beforeRel := d.Stored, d.Step, d.ReleaseID
			d.Apply(*j.ci, now)
			results[i].v = v
			if d.Stored != before || d.Step != beforeStep || d.ReleaseID != beforeRel {
				events = append(events, fleet.Event{At: now, Serial: d.Serial, Kind: fleet.EventState, Detail: describe(d)})
			}
		}
		list := make([]*fleet.Device, 0, len(changed))
		for _, sn := range serials {
			if d, ok := changed[sn]; ok {
				list = append(list, d)
			}
		}
		if err := tx.PutDevices(ctx, list); err != nil {
			return err
		}
		if err := tx.AddReports(ctx, recs); err != nil {
			return err
		}
		if err := tx.AddEvents(ctx, events); err != nil {
			return err
		}
		return tx.AddCounters(ctx, counts)
	})
	return results, err
}

// describe is a history line for a device's state.
func describe(d *fleet.Device) string {
	s := string(d.Stored)
	if d.Step != "" {
		s += ": step " + d.Step
		if d.ReleaseID != "" {
			s += " of " + d.ReleaseID
		}
		if d.Progress > 0 {
			s += fmt.Sprintf(" (%d%%)", d.Progress)
		}
	}
	if d.LastResult != "" {
		s += "; last result " + d.LastResult
		if d.LastCode != "" {
			s += " (" + d.LastCode + ")"
		}
		if d.LastReleaseID != "" {
			s += " on " + d.LastReleaseID
		}
	}
	return s + "; firmware " + d.Firmware
}

// reportAnswer is the body of a 200 answer to a report.
type reportAnswer struct {
	Stored  string `json:"stored,omitempty"`  // the report id
	Ignored string `json:"ignored,omitempty"` // why it was not counted
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	payload, key, ok := s.open(w, r, fleet.TypeReport)
	if !ok {
		return
	}
	rep, err := fleet.ParseReport(payload)
	if err != nil {
		s.count(r.Context(), fleet.CounterMalformed)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, ok := s.enqueue(w, r, &job{rep: &rep, key: key})
	if !ok {
		return
	}
	s.answerReport(w, rep, res)
}

// answerReport answers a report its batch stored.
func (s *Server) answerReport(w http.ResponseWriter, rep fleet.Report, res jobResult) {
	v, last := res.v, res.last
	log := s.log.WithFields(logrus.Fields{"serial": rep.DeviceSerial, "release": rep.ReleaseID, "seq": rep.Seq, "id": rep.ID})
	switch v {
	case forged:
		log.Warn("report refused: the serial is enrolled with another key")
		writeError(w, http.StatusForbidden, fmt.Sprintf("serial %s is enrolled with another key: refused and counted", rep.DeviceSerial))
	case pending:
		writeError(w, http.StatusConflict, fmt.Sprintf("serial %s waits for enrolment approval (fwctl fleet approve): keep the report and send it again later", rep.DeviceSerial))
	case replayed:
		log.Info("report ignored: replayed or reordered")
		// It may be a report stored by a COMMIT whose outcome was unknown
		// (answered 503, fleet.ErrCommitUnknown) and sent again: no check
		// was queued for it then. The check counts only stored reports,
		// so a true replay changes nothing but costs one more check (and
		// checks are spaced: see autoQueue).
		s.queueAutoPauseAfter(rep)
		writeJSON(w, http.StatusOK, reportAnswer{Ignored: fmt.Sprintf("sequence %d is not above the last accepted %d: a replay or a report already stored, not counted", rep.Seq, last)})
	default:
		log.WithField("result", rep.Result).Info("report stored")
		s.queueAutoPauseAfter(rep)
		writeJSON(w, http.StatusOK, reportAnswer{Stored: rep.ID})
	}
}

// queueAutoPauseAfter queues the auto-pause check of rep's release when
// rep finishes an install (installed or failed), before the agent is
// answered.
func (s *Server) queueAutoPauseAfter(rep fleet.Report) {
	if rep.ReleaseID != "" && (rep.Result == fleet.ResultInstalled || rep.Result == fleet.ResultFailed) {
		s.queueAutoPause(rep.ReleaseID)
	}
}

func reportLine(r fleet.Report) string {
	s := "step " + r.Step
	if r.ReleaseID != "" {
		s += " of " + r.ReleaseID
	}
	if r.Result != "" {
		s += ": " + r.Result
	}
	for i, c := range r.Codes {
		if i == 0 {
			s += " ("
		} else {
			s += ", "
		}
		s += c
		if i == len(r.Codes)-1 {
			s += ")"
		}
	}
	return s
}
