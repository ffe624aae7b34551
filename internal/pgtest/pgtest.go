// Package pgtest starts a throwaway PostgreSQL cluster for tests and
// benchmarks: initdb in a fresh temporary directory, a free loopback port,
// the unix socket in that directory, pg_ctl start and stop. The binaries
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
	"net"
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
)

// ErrNoPostgres means no PostgreSQL binaries were found.
var ErrNoPostgres = errors.New("PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's postgresql package (apt-get install -y postgresql)")

// Cluster is a running throwaway PostgreSQL.
type Cluster struct {
	Dir  string // temporary directory: data/, sockets, log
	Port int
	bin  string
	cred *syscall.Credential
	n    atomic.Int64
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	c.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	maxConn := opt.MaxConnections
	if maxConn <= 0 {
		maxConn = 100
	}
	settings := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=%d -c shared_buffers=64MB", c.Port, dir, maxConn)
	if !opt.Durable {
		settings += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	if out, err := c.run(ctx, "pg_ctl", "start", "-D", data, "-w", "-t", "60", "-l", filepath.Join(dir, "postgres.log"), "-o", settings); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		return fail(fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log))
	}
	return c, nil
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

// Stop stops the cluster and removes its directory.
func (c *Cluster) Stop() error {
	_, err := c.run(context.Background(), "pg_ctl", "stop", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w")
	if rerr := os.RemoveAll(c.Dir); err == nil {
		err = rerr
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
		if errors.Is(sharedErr, ErrNoPostgres) && os.Getenv("CI") == "" {
			t.Skip(sharedErr.Error() + " (skipped outside CI; CI fails here)")
		}
		t.Fatalf("start a throwaway PostgreSQL: %v", sharedErr)
	}
	u, err := shared.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
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
