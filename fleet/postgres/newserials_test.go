package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/postgres"
	"github.com/fwagent/fwagent/internal/pgtest"
)

// advisoryLocks counts the advisory locks of db's database, granted or
// waited for.
func advisoryLocks(t *testing.T, db *sql.DB, granted bool) int {
	t.Helper()
	var n int
	err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, granted).Scan(&n)
	if err != nil {
		t.Fatalf("read pg_locks: %v", err)
	}
	return n
}

// waitsForLock polls pg_locks until a session of db's database waits for
// an advisory lock (true), or done is closed first (false). It fails the
// test after a minute.
func waitsForLock(t *testing.T, db *sql.DB, done <-chan struct{}) bool {
	t.Helper()
	deadline := time.After(time.Minute)
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for advisoryLocks(t, db, false) == 0 {
		select {
		case <-done:
			return false
		case <-deadline:
			t.Fatal("after a minute, nothing waits for a lock and the waiting transaction has not returned")
		case <-poll.C:
		}
	}
	return true
}

// heldRead runs a transaction that reads serials with DevicesForUpdate,
// says so on read, waits for release, stores put and commits; the
// transaction's error comes on the returned channel.
func heldRead(s fleet.Store, serials []string, read, release chan struct{}, put ...*fleet.Device) <-chan error {
	errc := make(chan error, 1)
	go func() {
		errc <- s.Update(context.Background(), func(tx fleet.Tx) error {
			if _, err := tx.DevicesForUpdate(context.Background(), serials); err != nil {
				close(read)
				return err
			}
			close(read)
			<-release
			return tx.PutDevices(context.Background(), put)
		})
	}()
	return errc
}

// A transaction that reads a serial without a row waits for another that
// read it first, and then reads the row that one created: FOR UPDATE
// alone locks nothing for a row that does not exist.
func TestASerialWithoutARowWaitsForTheTransactionCreatingIt(t *testing.T) {
	s, err := postgres.Open(context.Background(), pgtest.URL(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx fleet.Tx) error {
		return tx.PutDevices(ctx, []*fleet.Device{{Serial: "SN-OLD", KeyID: "old", Stored: fleet.StateNeverSeen}})
	}); err != nil {
		t.Fatal(err)
	}

	read, release := make(chan struct{}), make(chan struct{})
	first := heldRead(s, []string{"SN-NEW", "SN-OLD"}, read, release,
		&fleet.Device{Serial: "SN-NEW", KeyID: "first", Enrolment: fleet.EnrolAccepted, Stored: fleet.StateNeverSeen})
	<-read
	// The first holds the enrolment lock (shared) and SN-NEW's; SN-OLD's
	// row lock is no advisory lock.
	if n := advisoryLocks(t, s.DB(), true); n != 2 {
		t.Errorf("%d advisory locks held, want 2 (the enrolment lock, one new serial)", n)
	}

	var got map[string]*fleet.Device
	done := make(chan struct{})
	var secondErr error
	go func() {
		defer close(done)
		secondErr = s.Update(ctx, func(tx fleet.Tx) (err error) {
			got, err = tx.DevicesForUpdate(ctx, []string{"SN-NEW"})
			return err
		})
	}()
	if !waitsForLock(t, s.DB(), done) {
		t.Errorf("the second transaction read SN-NEW (%v) while the first, which read it first, was open", got)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-done
	if secondErr != nil {
		t.Fatal(secondErr)
	}
	if d := got["SN-NEW"]; d == nil || d.KeyID != "first" {
		t.Fatalf("the second transaction read %+v, want the row the first created", d)
	}
}

// A bulk of new serials (an approval or import of thousands) takes one
// exclusive lock, not one per serial, which would exhaust PostgreSQL's
// lock table ("out of shared memory"); enrolments wait for it, and
// transactions on known serials do not.
func TestABulkOfNewSerialsTakesOneLock(t *testing.T) {
	s, err := postgres.Open(context.Background(), pgtest.URL(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx fleet.Tx) error {
		return tx.PutDevices(ctx, []*fleet.Device{{Serial: "SN-OLD", Stored: fleet.StateNeverSeen}})
	}); err != nil {
		t.Fatal(err)
	}
	bulk := make([]string, 20000)
	for i := range bulk {
		bulk[i] = fmt.Sprintf("BULK-%05d", i)
	}
	read, release := make(chan struct{}), make(chan struct{})
	first := heldRead(s, bulk, read, release)
	<-read
	if n := advisoryLocks(t, s.DB(), true); n != 1 {
		t.Errorf("%d advisory locks held for %d new serials, want 1", n, len(bulk))
	}

	// A known serial does not wait for the bulk.
	if err := s.Update(ctx, func(tx fleet.Tx) error {
		_, err := tx.DevicesForUpdate(ctx, []string{"SN-OLD"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A new one does.
	done := make(chan struct{})
	var secondErr error
	go func() {
		defer close(done)
		secondErr = s.Update(ctx, func(tx fleet.Tx) error {
			_, err := tx.DevicesForUpdate(ctx, []string{"SN-NEW"})
			return err
		})
	}()
	if !waitsForLock(t, s.DB(), done) {
		t.Errorf("an enrolment of a new serial went on (%v) while a bulk enrolment was open", secondErr)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the bulk transaction: %v", err)
	}
	<-done
	if secondErr != nil {
		t.Fatal(secondErr)
	}
}
