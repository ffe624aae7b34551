// Package pgtest starts a throwaway PostgreSQL cluster for tests and
// benchmarks: initdb in a fresh temporary directory, a loopback port
// reserved for the cluster's life (internal/testport: no other test
// binary is given it while the server starts or while it is stopped), the
// unix socket in that directory, pg_ctl start and stop. A cluster's
// server can also be stopped and started again on the same port with its
// data kept (StopServer, StartServer), for tests of a database outage:
// such a test owns its cluster (Own or Start), never the shared one of URL,
// whose databases other tests of the package use at the same time. The binaries
// come from PATH or /usr/lib/postgresql/*/bin. PostgreSQL refuses to run
// as root, so under root the cluster runs as the "postgres" user (or
// "nobody") on a directory handed to that user.
//
// Without the binaries a test fails when CI is set (CI must install
// Debian's postgresql) and is skipped otherwise, with a message saying
// what to install.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/fwagent/fwagent/internal/testport"
)

// ErrNoPostgres means no PostgreSQL binaries were found.
var ErrNoPostgres = errors.New("PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's postgresql package (apt-get install -y postgresql)")

// Cluster is a throwaway PostgreSQL: its directory and, between
// StopServer and StartServer, a stopped server.
type Cluster struct {
	Dir  string // temporary directory: data/, sockets, log
	Port int
	port *testport.Reservation // held from Start to Stop
	bin  string
	cred *syscall.Credential
	n    atomic.Int64
	// settings are the server options of pg_ctl start (port, socket
	// directory, limits): StartServer reuses them, so a restarted server
	// listens where its clients know it.
	settings string

	mu sync.Mutex // serialises StopServer, StartServer and Stop
	up bool       // the server runs
}

// BinDir finds the directory holding initdb and pg_ctl.
func BinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			real, err := filepath.EvalSymlinks(p)
			if err == nil {
				return filepath.Dir(real), nil
			}
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Options tune a cluster.
type Options struct {
	// Durable keeps fsync and synchronous commit on (benchmarks); tests
	// turn them off for speed.
	Durable bool
	// MaxConnections (default 100).
	MaxConnections int
}

// Start creates and starts a cluster.
func Start(ctx context.Context, opt Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fwagent-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	fail := func(err error) (*Cluster, error) {
		if c.port != nil {
			c.port.Close()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	if os.Geteuid() == 0 {
		uid, gid, err := runAsUser()
		if err != nil {
			return fail(err)
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			return fail(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}
	res, err := testport.Reserve()
	if err != nil {
		return fail(err)
	}
	c.port, c.Port = res, res.Port
	maxConn := opt.MaxConnections
	if maxConn <= 0 {
		maxConn = 100
	}
	c.settings = fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=%d -c shared_buffers=64MB", c.Port, dir, maxConn)
	if !opt.Durable {
		c.settings += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	if err := c.start(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.Dir, "data") }

// start runs pg_ctl start with the cluster's settings and waits until the
// server accepts connections; the log file is appended to.
func (c *Cluster) start(ctx context.Context) error {
	logPath := filepath.Join(c.Dir, "postgres.log")
	if out, err := c.run(ctx, "pg_ctl", "start", "-D", c.data(), "-w", "-t", "60", "-l", logPath, "-o", c.settings); err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("pg_ctl start on port %d: %w\n%s\n%s", c.Port, err, out, log)
	}
	c.up = true
	return nil
}

// StopServer stops the cluster's server (fast shutdown: open sessions are
// ended, clients see their connections close and new ones refused) and
// keeps its data for StartServer. Stopping a stopped server does nothing.
func (c *Cluster) StopServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		return nil
	}
	if out, err := c.run(context.Background(), "pg_ctl", "stop", "-D", c.data(), "-m", "fast", "-w", "-t", "60"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	c.up = false
	return nil
}

// StartServer starts a server StopServer stopped, on the same data, port
// and settings, and returns once it accepts connections. Starting a
// running server does nothing. The port stayed reserved while the server
// was stopped: no other program took it.
func (c *Cluster) StartServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		return nil
	}
	return c.start(ctx)
}

// runAsUser picks the unprivileged user that runs the cluster under root.
func runAsUser() (int, int, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return uid, gid, nil
	}
	return 0, 0, errors.New("running as root and neither the postgres nor the nobody user exists: PostgreSQL refuses to run as root")
}

// run runs a PostgreSQL binary (as the cluster's user), output to a file:
// a pipe would be inherited by the server pg_ctl starts and never close.
func (c *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	outPath := filepath.Join(c.Dir, name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		return "", err
	}
	defer out.Close()
	if c.cred != nil {
		_ = out.Chown(int(c.cred.Uid), int(c.cred.Gid))
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "HOME="+c.Dir)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	err = cmd.Run()
	b, _ := os.ReadFile(outPath)
	return string(b), err
}

// Run runs one of the cluster's PostgreSQL programs (pgbench, psql) as
// the cluster's user and returns its output.
func (c *Cluster) Run(ctx context.Context, name string, args ...string) (string, error) {
	return c.run(ctx, name, args...)
}

// URL returns the URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// NewDatabase creates an empty database and returns its URL.
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", c.n.Add(1))
	db, err := sql.Open("pgx", c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// Stop stops the cluster (its server if it runs) and removes its directory.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.up {
		_, err = c.run(context.Background(), "pg_ctl", "stop", "-D", c.data(), "-m", "immediate", "-w")
		c.up = false
	}
	if rerr := os.RemoveAll(c.Dir); err == nil {
		err = rerr
	}
	if c.port != nil {
		c.port.Close()
		c.port = nil
	}
	return err
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
)

// Main runs a package's tests and stops the shared cluster afterwards;
// call it from TestMain: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop the cluster:", err)
		}
	}
	return code
}

// URL returns the URL of a fresh, empty database on the package's shared
// cluster (started on first use; stopped by Main). Without PostgreSQL the
// test fails under CI and is skipped otherwise.
func URL(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start(context.Background(), Options{}) })
	if sharedErr != nil {
		noCluster(t, sharedErr)
	}
	u, err := shared.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Own starts a cluster for the test alone, stopped and removed when the
// test ends: the one to use for a test that stops the server (StopServer),
// which would break the shared cluster's databases under other tests.
// Without PostgreSQL the test fails under CI and is skipped otherwise.
func Own(t testing.TB, opt Options) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), opt)
	if err != nil {
		noCluster(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: stop the cluster: %v", err)
		}
	})
	return c
}

// OwnDatabase is Own and a fresh, empty database on that cluster: the
// cluster and the database's URL.
func OwnDatabase(t testing.TB, opt Options) (*Cluster, string) {
	t.Helper()
	c := Own(t, opt)
	u, err := c.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c, u
}

// noCluster ends a test that could not start a cluster: skipped when the
// binaries are missing outside CI, failed otherwise.
func noCluster(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoPostgres) && os.Getenv("CI") == "" {
		t.Skip(err.Error() + " (skipped outside CI; CI fails here)")
	}
	t.Fatalf("start a throwaway PostgreSQL: %v", err)
}

// Available reports whether the PostgreSQL binaries exist (for messages).
func Available() bool {
	_, err := BinDir()
	return err == nil
}

// Describe says which binaries are used.
func Describe() string {
	d, err := BinDir()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(d)
}
