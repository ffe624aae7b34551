package server_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

// readHeldStore holds the first transaction that reads serial, after
// DevicesForUpdate has returned, until release is closed (telling held
// when it is there): what DevicesForUpdate locked stays locked, and the
// transaction has decided on what it read but stored nothing yet.
type readHeldStore struct {
	fleet.Store
	serial        string
	held, release chan struct{}
	once          sync.Once
}

type readHeldTx struct {
	fleet.Tx
	s *readHeldStore
}

func (s *readHeldStore) Update(ctx context.Context, fn func(fleet.Tx) error) error {
	return s.Store.Update(ctx, func(tx fleet.Tx) error { return fn(readHeldTx{Tx: tx, s: s}) })
}

func (tx readHeldTx) DevicesForUpdate(ctx context.Context, serials []string) (map[string]*fleet.Device, error) {
	devs, err := tx.Tx.DevicesForUpdate(ctx, serials)
	if err == nil && slices.Contains(serials, tx.s.serial) {
		tx.s.once.Do(func() {
			close(tx.s.held)
			<-tx.s.release
		})
	}
	return devs, err
}

// waitsForLock polls pg_locks until a session of db's database waits for
// an advisory lock (true), or done is closed first (false: what should
// have waited went on). It fails the test after a minute.
func waitsForLock(t *testing.T, db *sql.DB, done <-chan struct{}) bool {
	t.Helper()
	deadline := time.After(time.Minute)
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for {
		var n int
		err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
		if err != nil {
			t.Fatalf("read pg_locks: %v", err)
		}
		if n > 0 {
			return true
		}
		select {
		case <-done:
			return false
		case <-deadline:
			t.Fatal("after a minute, nothing waits for a lock and the second check-in is not answered")
		case <-poll.C:
		}
	}
}

// Two servers on one database, each with a first check-in for the same
// new serial under a different key. Server A's transaction has read the
// devices (no row) and holds; B's must wait for it, then see A's row and
// refuse its key as forged. Before the fix B found no row either, created
// the device with its key and answered as if it were the first, and
// whichever transaction committed last set the key: in open enrolment the
// legitimate device could be refused as forged, in approve mode the
// pending key was swapped under the administrator.
func TestTwoServersEnrollingOneNewSerialAtOnceKeepTheFirstKey(t *testing.T) {
	for _, tc := range []struct {
		mode       string
		enrolment  string
		firstReply string
	}{
		{server.EnrolOpen, fleet.EnrolAccepted, fleet.EnrolAccepted},
		{server.EnrolApprove, fleet.EnrolPending, fleet.EnrolPending},
	} {
		t.Run(tc.mode+" enrolment", func(t *testing.T) {
			url := pgtestURL(t)
			hs := &readHeldStore{Store: postgresStore(t, url), serial: "SN-RACE", held: make(chan struct{}), release: make(chan struct{})}
			a := newFixture(t, hs, server.Options{Enrolment: tc.mode})
			b := newFixture(t, postgresStore(t, url), server.Options{Enrolment: tc.mode})
			released := false
			t.Cleanup(func() { // before the fixtures': their Close waits for the writers
				if !released {
					close(hs.release)
				}
			})
			db := hs.Store.(interface{ DB() *sql.DB }).DB()

			first, second := a.agent("SN-RACE"), b.agent("SN-RACE")
			type answer struct {
				reply fleet.CheckInReply
				err   error
			}
			firstAnswer := make(chan answer, 1)
			go func() { r, err := first.checkIn(); firstAnswer <- answer{r, err} }()
			<-hs.held // A's transaction read no SN-RACE row and holds

			var secondErr error
			secondDone := make(chan struct{})
			go func() {
				defer close(secondDone)
				_, secondErr = second.checkIn()
			}()
			if !waitsForLock(t, db, secondDone) {
				t.Errorf("server B answered (%v) while server A's transaction held the new serial: B's transaction did not wait for A's", secondErr)
			}
			close(hs.release)
			released = true

			if fa := <-firstAnswer; fa.err != nil || fa.reply.Enrolment != tc.firstReply {
				t.Fatalf("the first key's check-in through A: %+v, %v; want enrolment %s", fa.reply, fa.err, tc.firstReply)
			}
			<-secondDone
			if statusOf(secondErr) != http.StatusForbidden {
				t.Fatalf("the second key's check-in through B = %v, want 403: the serial is bound to the first key", secondErr)
			}
			d, err := b.store.Device(context.Background(), "SN-RACE")
			if err != nil {
				t.Fatal(err)
			}
			if d.KeyID != first.key.ID() || d.Enrolment != tc.enrolment {
				t.Fatalf("SN-RACE is bound to %s (%s), want the first key %s (%s)", d.KeyID, d.Enrolment, first.key.ID(), tc.enrolment)
			}
			if c := b.counters(); c[fleet.CounterForged] != 1 {
				t.Fatalf("counters %v, want 1 forgery", c)
			}
		})
	}
}

// A batch whose check-ins arrive in reverse serial order, all new serials
// (one lock each on PostgreSQL), is stored whole.
func TestABatchInReverseSerialOrderIsStored(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f, gs, letGo := holdTheWriter(t, open(t), 8)

		// Queued while the writer is held, the next ones form one batch.
		now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		serials := []string{"SN-5", "SN-4", "SN-3", "SN-2", "SN-1"}
		var queued []*server.Queued
		for _, sn := range serials {
			pub := ed25519Key().Public().(ed25519.PublicKey)
			ci := &fleet.CheckIn{Seq: 1, Time: now, Serial: sn, Model: "m", AgentVersion: "1", IntervalSeconds: 60}
			queued = append(queued, f.srv.QueueUnchecked(pub, ci, nil))
		}
		letGo()
		for i, q := range queued {
			if a := q.Answer(); a.Code != http.StatusOK {
				t.Errorf("%s: answer %d %s, want 200", serials[i], a.Code, a.Body)
			}
		}
		if n := gs.batches.Load(); n != 2 {
			t.Errorf("%d transactions, want 2 (the held one, then one batch of the others)", n)
		}
		ds, err := gs.Devices(context.Background(), fleet.DeviceFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.Serial)
		}
		if want := []string{"HELD", "SN-1", "SN-2", "SN-3", "SN-4", "SN-5"}; !slices.Equal(got, want) {
			t.Fatalf("stored devices %v, want %v", got, want)
		}
	})
}
