package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

// gatedStore holds the first check-in transactions (hold of them, 1 if
// 0) inside the store (in DevicesForUpdate) until release is closed,
// telling entered when all are there: the server's writers are then busy
// for as long as the test wants. batches counts the check-in transactions'
// runs (DevicesForUpdate calls).
type gatedStore struct {
	fleet.Store
	entered, release chan struct{}
	hold             int32
	held             atomic.Int32
	batches          atomic.Int32
}

type gatedTx struct {
	fleet.Tx
	s *gatedStore
}

func (s *gatedStore) Update(ctx context.Context, fn func(fleet.Tx) error) error {
	return s.Store.Update(ctx, func(tx fleet.Tx) error { return fn(gatedTx{Tx: tx, s: s}) })
}

func (tx gatedTx) DevicesForUpdate(ctx context.Context, serials []string) (map[string]*fleet.Device, error) {
	tx.s.batches.Add(1)
	if hold, n := max(tx.s.hold, 1), tx.s.held.Add(1); n <= hold {
		if n == hold {
			close(tx.s.entered)
		}
		<-tx.s.release
	}
	return tx.Tx.DevicesForUpdate(ctx, serials)
}

// holdTheWriter starts a server over store with one writer taking up to
// maxBatch messages, and holds that writer inside the store with a
// check-in from HELD: what the test queues then forms one batch. letGo
// releases the writer and checks the held check-in was stored.
func holdTheWriter(t *testing.T, store fleet.Store, maxBatch int) (f *fixture, gs *gatedStore, letGo func()) {
	t.Helper()
	return holdTheWriters(t, store, maxBatch, "HELD")
}

// holdTheWriters starts a server over store with a writer for each of
// serials, each taking up to maxBatch messages, and holds every writer
// inside the store (its transaction open on its own connection) with a
// check-in from one of serials (maxBatch 1 then, so that no writer takes
// two of them). letGo releases the writers and checks the
// held check-ins were stored.
func holdTheWriters(t *testing.T, store fleet.Store, maxBatch int, serials ...string) (f *fixture, gs *gatedStore, letGo func()) {
	t.Helper()
	gs = &gatedStore{Store: store, entered: make(chan struct{}), release: make(chan struct{}), hold: int32(len(serials))}
	f = newFixture(t, gs, server.Options{Enrolment: server.EnrolOpen, Writers: len(serials), MaxBatch: maxBatch})
	released := false
	t.Cleanup(func() { // before the fixture's: its Close waits for the writers
		if !released {
			close(gs.release)
		}
	})
	held := make(chan error, len(serials))
	for _, sn := range serials {
		go func() { _, err := f.agent(sn).checkIn(); held <- err }()
	}
	select { // every writer is inside the store with a held check-in
	case <-gs.entered:
	case err := <-held:
		t.Fatalf("a held check-in was answered before the writers were all held: %v", err)
	}
	return f, gs, func() {
		t.Helper()
		close(gs.release)
		released = true
		for range serials {
			if err := <-held; err != nil {
				t.Fatalf("a held check-in: %v", err)
			}
		}
	}
}

type busyAnswer struct {
	status     int
	retryAfter string
	body       string
}

func TestAFullCheckInQueueAnswers503WithRetryAfterAndStoresNothing(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		gs := &gatedStore{Store: open(t), entered: make(chan struct{}), release: make(chan struct{})}
		// One writer, one check-in per transaction: the queue holds 4.
		const queued = 4
		f := newFixture(t, gs, server.Options{Enrolment: server.EnrolOpen, Writers: 1, MaxBatch: 1})
		released := false
		t.Cleanup(func() { // before the fixture's: its Close waits for the writer
			if !released {
				close(gs.release)
			}
		})

		checkIn := func(serial string) busyAnswer {
			env, _, err := f.agent(serial).key.SignCheckIn(fleet.CheckIn{Serial: serial, Model: "iDS-9632NXI-I8/16S", AgentVersion: "1.0", IntervalSeconds: 60})
			if err != nil {
				return busyAnswer{body: err.Error()}
			}
			resp, err := http.Post(f.http.URL+fleet.CheckInPath, "application/json", bytes.NewReader(env.Marshal()))
			if err != nil {
				return busyAnswer{body: err.Error()}
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return busyAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
		}

		answers := make(chan busyAnswer, 32)
		go func() { answers <- checkIn("HELD-0") }()
		select { // the only writer is inside the store with HELD-0
		case <-gs.entered:
		case a := <-answers:
			t.Fatalf("the held check-in was answered before it reached the store: %d %s", a.status, a.body)
		}

		const more = 20
		for i := range more {
			go func() { answers <- checkIn(fmt.Sprintf("DEV-%02d", i)) }()
		}
		// queued of them wait in the queue; every other one is refused at
		// once, without waiting for the writer.
		for range more - queued {
			a := <-answers
			if a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
				t.Fatalf("status %d, Retry-After %q (%s): want 503 with Retry-After while the queue is full", a.status, a.retryAfter, a.body)
			}
		}
		close(gs.release)
		released = true
		for range 1 + queued {
			if a := <-answers; a.status != http.StatusOK {
				t.Fatalf("status %d (%s): a queued check-in must be stored once the writer is free", a.status, a.body)
			}
		}
		if got := f.counters()[fleet.CounterBusy]; got != more-queued {
			t.Fatalf("%s = %d, want %d", fleet.CounterBusy, got, more-queued)
		}
		ds, err := gs.Devices(context.Background(), fleet.DeviceFilter{})
		if err != nil || len(ds) != 1+queued {
			t.Fatalf("%d devices (%v), want %d: a refused check-in was stored", len(ds), err, 1+queued)
		}
		if a := checkIn("AFTER"); a.status != http.StatusOK {
			t.Fatalf("status %d (%s) after the queue drained, want 200", a.status, a.body)
		}
	})
}

// Close stores what was queued before it, and a message queued after the
// writers ended is answered 503 at once: no handler waits for an answer
// that never comes.
func TestCloseAnswersEveryQueuedMessage(t *testing.T) {
	gs := &gatedStore{Store: sqliteStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, gs, server.Options{Enrolment: server.EnrolOpen, Writers: 1, MaxBatch: 2})
	ci := func(serial string) *fleet.CheckIn {
		return &fleet.CheckIn{Seq: 1, Time: time.Now().UTC(), Serial: serial, Model: "m", AgentVersion: "1", IntervalSeconds: 60}
	}
	first := f.srv.QueueUnchecked(ed25519Key().Public().(ed25519.PublicKey), ci("FIRST"), nil)
	<-gs.entered // the only writer is inside the store with FIRST
	var queued []*server.Queued
	for i := 0; i < 5; i++ {
		queued = append(queued, f.srv.QueueUnchecked(ed25519Key().Public().(ed25519.PublicKey), ci(fmt.Sprintf("Q-%d", i)), nil))
	}
	closed := make(chan struct{})
	go func() { _ = f.srv.Close(); close(closed) }()
	close(gs.release)
	<-closed
	for i, q := range append([]*server.Queued{first}, queued...) {
		if a := q.Answer(); a.Code != http.StatusOK {
			t.Errorf("message %d queued before Close: %d %s, want 200 (stored)", i, a.Code, a.Body)
		}
	}
	late := f.srv.QueueUnchecked(ed25519Key().Public().(ed25519.PublicKey), ci("LATE"), nil)
	if a := late.Answer(); a.Code != http.StatusServiceUnavailable || !strings.Contains(a.Body.String(), "shutting down") {
		t.Fatalf("a message queued after Close: %d %s, want 503 shutting down", a.Code, a.Body)
	}
}
