package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/postgres"
	"github.com/fwagent/fwagent/internal/pgtest"
)

// atOnce runs n transactions, the i-th adding 1 to counter prefix-i,
// that are all open at the same time, each on its own pooled connection
// (distinct counters: one row would hold all but one of them behind its
// lock). Once all have added, between runs (nil: nothing), then each
// reads a device, a statement on its connection after between. A second
// run (after a lost connection) does not wait. It returns how often the
// transactions' function ran, and their errors.
func atOnce(ctx context.Context, s fleet.Store, n int, prefix string, between func()) (int64, []error) {
	var (
		runs    atomic.Int64
		added   sync.WaitGroup
		proceed = make(chan struct{})
		errs    = make([]error, n)
		done    sync.WaitGroup
	)
	added.Add(n)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			first := true
			errs[i] = s.Update(ctx, func(tx fleet.Tx) error {
				runs.Add(1)
				if err := tx.AddCounters(ctx, map[string]int64{fmt.Sprintf("%s-%d", prefix, i): 1}); err != nil {
					return err
				}
				if first {
					first = false
					added.Done()
					<-proceed
				}
				_, err := tx.DevicesForUpdate(ctx, []string{fmt.Sprintf("SN-%d", i)})
				return err
			})
			if first { // failed before it added: the others must not wait for it
				added.Done()
			}
		}()
	}
	added.Wait()
	if between != nil {
		between()
	}
	close(proceed)
	done.Wait()
	return runs.Load(), errs
}

// restart stops the cluster's server (fast shutdown: every session ends)
// and starts it again on its port.
func restart(ctx context.Context, t *testing.T, pg *pgtest.Cluster) {
	t.Helper()
	if err := pg.StopServer(); err != nil {
		t.Fatal(err)
	}
	if err := pg.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
}

// After PostgreSQL restarts, every connection the pool held is dead. A
// transaction or read that meets one runs once more on a live
// connection, so the restart fails none of them; a transaction open on
// its connection across the restart did not commit, and its second run
// stores what it stores once.
func TestARestartFailsNoTransactionNorRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, url := pgtest.OwnDatabase(t, pgtest.Options{}) // restarted below: not the shared cluster
	const conns = 6
	// The pool pings a connection idle over a second before handing it
	// out; a slow restart would leave no connection from before it for
	// the store to meet. Here it never pings one on its own.
	s, err := postgres.OpenPingingAfter(ctx, url, conns, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	counters := func() map[string]int64 {
		t.Helper()
		c, err := s.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("connections idle in the pool", func(t *testing.T) {
		// Fill the pool with connections, then restart under them.
		if _, errs := atOnce(ctx, s, conns, "before", nil); errors.Join(errs...) != nil {
			t.Fatal(errors.Join(errs...))
		}
		restart(ctx, t, pg)
		// As many transactions and as many reads as there are dead
		// connections, all at once.
		var wg sync.WaitGroup
		errs := make(chan error, 4*conns)
		for i := range conns {
			wg.Add(4)
			go func() {
				defer wg.Done()
				errs <- s.Update(ctx, func(tx fleet.Tx) error {
					return tx.AddCounters(ctx, map[string]int64{"after": 1})
				})
			}()
			go func() { defer wg.Done(); _, err := s.Counters(ctx); errs <- err }()
			go func() {
				defer wg.Done()
				_, err := s.Device(ctx, fmt.Sprintf("SN-%d", i))
				if errors.Is(err, fleet.ErrNotFound) {
					err = nil
				}
				errs <- err
			}()
			go func() { defer wg.Done(); errs <- s.Ping(ctx) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("after the restart: %v", err)
			}
		}
		c := counters()
		for i := range conns {
			if n := c[fmt.Sprintf("before-%d", i)]; n != 1 {
				t.Errorf("counter before-%d = %d, want 1", i, n)
			}
		}
		if c["after"] != conns {
			t.Fatalf("counter after = %d, want %d: each transaction after the restart stored once", c["after"], conns)
		}
	})

	t.Run("transactions open across the restart", func(t *testing.T) {
		runs, errs := atOnce(ctx, s, conns, "open", func() { restart(ctx, t, pg) })
		for i, err := range errs {
			if err != nil {
				t.Errorf("transaction %d, open across the restart: %v", i, err)
			}
		}
		if runs != 2*conns {
			t.Errorf("the transactions ran %d times, want %d: once on the connection the restart ended, once more on a live one", runs, 2*conns)
		}
		c := counters()
		for i := range conns {
			if n := c[fmt.Sprintf("open-%d", i)]; n != 1 {
				t.Errorf("counter open-%d = %d, want 1: the run the restart ended stores nothing, the second run stores once", i, n)
			}
		}
	})
}

// A COMMIT that the server answers by ending the session may have
// committed: Update returns the error and does not run the transaction
// again. The COMMIT is held in a deferred trigger that waits for an
// advisory lock the test holds, and the test ends that session.
func TestACommitWhoseOutcomeIsUnknownRunsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.URL(t)
	s, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	locker, err := db.Conn(ctx) // holds the advisory lock
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	for _, q := range []string{
		"SELECT pg_advisory_lock(4242)",
		`CREATE FUNCTION wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$`,
		"CREATE CONSTRAINT TRIGGER wait_at_commit AFTER INSERT OR UPDATE ON counters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_at_commit()",
	} {
		if _, err := locker.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var runs atomic.Int64
	result := make(chan error, 1)
	go func() {
		result <- s.Update(ctx, func(tx fleet.Tx) error {
			runs.Add(1)
			return tx.AddCounters(ctx, map[string]int64{"held": 1})
		})
	}()
	// The session whose COMMIT waits for the lock.
	var pid int
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := db.QueryRowContext(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory' AND query ILIKE 'commit%'").Scan(&pid)
		if err == nil {
			break
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		select {
		case err := <-result:
			t.Fatalf("the transaction ended (%v) before its COMMIT waited", err)
		case <-ctx.Done():
			t.Fatal("no COMMIT waits for the advisory lock")
		case <-tick.C:
		}
	}
	if _, err := db.ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	// A second run would now commit.
	if _, err := locker.ExecContext(ctx, "SELECT pg_advisory_unlock(4242)"); err != nil {
		t.Fatal(err)
	}
	err = <-result
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" {
		t.Fatalf("Update with its COMMIT answered by the end of the session = %v, want the 57P01 error", err)
	}
	if !errors.Is(err, fleet.ErrCommitUnknown) {
		t.Fatalf("Update with its COMMIT answered by the end of the session = %v, want it to say the outcome is unknown (fleet.ErrCommitUnknown)", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the transaction ran %d times, want 1: a COMMIT whose outcome is unknown must not be run again", n)
	}
}

// Which errors say the connection was lost, and which that a statement
// never left the process: only the latter lets a failed COMMIT run again.
func TestWhichErrorsAreALostConnection(t *testing.T) {
	closed, err := pgconn.Connect(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close(context.Background())
	_, unsent := closed.Exec(context.Background(), "COMMIT").ReadAll()
	pgErr := func(code string) error { return &pgconn.PgError{Severity: "FATAL", Code: code} }
	for _, c := range []struct {
		name             string
		err              error
		connLost, unsent bool
	}{
		{"the server shut down or ended the session (57P01)", fmt.Errorf("store devices: %w", pgErr("57P01")), true, false},
		{"the server crashed (57P02)", pgErr("57P02"), true, false},
		{"the server is starting or stopping (57P03)", pgErr("57P03"), true, false},
		{"a statement on a closed connection", unsent, true, true},
		{"database/sql's bad connection", driver.ErrBadConn, true, false},
		{"the connection's stream ended", fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF), true, false},
		{"the connection was reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true, false},
		{"a unique violation", pgErr("23505"), false, false},
		{"a serialization failure", pgErr("40001"), false, false},
		{"no rows", sql.ErrNoRows, false, false},
		{"the caller gave up", fmt.Errorf("timeout: %w", context.DeadlineExceeded), false, false},
		{"the caller cancelled", context.Canceled, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := postgres.Dialect.ConnLost(c.err); got != c.connLost {
				t.Errorf("ConnLost(%v) = %v, want %v", c.err, got, c.connLost)
			}
			if got := postgres.Dialect.Unsent(c.err); got != c.unsent {
				t.Errorf("Unsent(%v) = %v, want %v", c.err, got, c.unsent)
			}
		})
	}
}
