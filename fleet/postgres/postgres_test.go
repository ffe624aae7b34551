package postgres_test

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/postgres"
	"github.com/fwagent/fwagent/fleet/storetest"
	"github.com/fwagent/fwagent/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fleet.Store {
		s, err := postgres.Open(context.Background(), pgtest.URL(t), 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestTwoStoresMigrateOneDatabase(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	errs := make(chan error, 2)
	stores := make(chan fleet.Store, 2)
	for i := 0; i < 2; i++ {
		go func() {
			s, err := postgres.Open(ctx, url, 2)
			errs <- err
			if err == nil {
				stores <- s
			}
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		s := <-stores
		defer s.Close()
	}
}

func TestBadURL(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "postgres://%zz", 1); err == nil {
		t.Fatal("Open accepted a malformed URL")
	}
}

// The batch read of devices (serial = ANY($1), prepared once per
// connection) must be planned for its parameters: PostgreSQL's generic
// plan for it scans every device.
func TestStatementsArePlannedForTheirParameters(t *testing.T) {
	s, err := postgres.Open(context.Background(), pgtest.URL(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode string
	if err := s.DB().QueryRowContext(context.Background(), "SHOW plan_cache_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "force_custom_plan" {
		t.Fatalf("plan_cache_mode = %q, want force_custom_plan", mode)
	}
}

func TestMigrationDropsCopiesOfImportedReports(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, _ := fs.Sub(postgres.Migrations, "migrations")
	storetest.MigrateImportCopies(t, db, goose.DialectPostgres, sub, func(t *testing.T) fleet.Store {
		s, err := postgres.Open(context.Background(), url, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
