package pgtest_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/pgtest"
)

// open returns a new connection pool on url (closed at the test's end), so
// each phase of a test talks to the server as it is now, through no
// connection of an earlier phase.
func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A stopped server refuses connections; started again it listens on the
// same port with the data written before the stop.
func TestAServerStoppedAndStartedAgainKeepsItsPortAndData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := pgtest.Own(t, pgtest.Options{})
	url, err := c.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, url).ExecContext(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the stop')"); err != nil {
		t.Fatal(err)
	}
	port := c.Port

	if err := c.StopServer(); err != nil {
		t.Fatal(err)
	}
	if err := c.StopServer(); err != nil {
		t.Fatalf("stopping a stopped server: %v, want nothing done", err)
	}
	if err := open(t, url).PingContext(ctx); err == nil {
		t.Fatal("a connection to the stopped server succeeded")
	}

	if err := c.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatalf("starting a running server: %v, want nothing done", err)
	}
	if c.Port != port {
		t.Fatalf("port %d after the restart, was %d", c.Port, port)
	}
	var v string
	if err := open(t, url).QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "before the stop" {
		t.Fatalf("after the restart the table holds %q, %v; want the row written before the stop", v, err)
	}
}
