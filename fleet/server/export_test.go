package server

import (
	"context"
	"crypto/ed25519"
	"net/http/httptest"

	"github.com/fwagent/fwagent/fleet"
)

// Queued is what QueueUnchecked put in the writers' queue.
type Queued struct {
	j   *job
	s   *Server
	ci  *fleet.CheckIn
	rep *fleet.Report
}

// QueueUnchecked puts a verified check-in or report (one of ci and rep) in
// the writers' queue as the handlers do, but without Validate: a test's
// way to put into a batch what Validate would refuse. The message is in
// the queue when it returns (the queue holds 4 MaxBatch).
func (s *Server) QueueUnchecked(key ed25519.PublicKey, ci *fleet.CheckIn, rep *fleet.Report) *Queued {
	j := &job{key: key, ci: ci, rep: rep, done: make(chan jobResult, 1)}
	s.queue <- j
	return &Queued{j: j, s: s, ci: ci, rep: rep}
}

// Answer waits for the message's batch and returns the HTTP answer its
// handler would have sent.
func (q *Queued) Answer() *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", fleet.CheckInPath, nil)
	res, ok := q.s.await(w, r, q.j)
	switch {
	case !ok:
	case q.ci != nil:
		q.s.answerCheckIn(w, r, *q.ci, res)
	default:
		q.s.answerReport(w, *q.rep, res)
	}
	return w
}

// StoreErrors is the count of requests answered 503 for a store error (the
// admin counters' store_unavailable), read without the store: a test reads
// it while the database is down.
func (s *Server) StoreErrors() int64 { return s.storeErr.Load() }

// Resumes is how often releaseID was resumed on this server.
func (s *Server) Resumes(releaseID string) uint64 { return s.auto.resumesOf(releaseID) }

// RunAutoPauseCheck runs a check of releaseID as one that began when the
// release had been resumed resumes times: a test's way to have a check
// begin before a resume and end after it.
func (s *Server) RunAutoPauseCheck(releaseID string, resumes uint64) {
	s.checkAutoPause(context.Background(), releaseID, resumes)
}
