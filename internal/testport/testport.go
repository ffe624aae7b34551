// Package testport reserves loopback TCP ports for tests. A reserved port
// is bound but not listening: a connection to it is refused, no other
// program's listener on port 0 and no outgoing connection is given it,
// and a server told its number can still listen on it (listeners set
// SO_REUSEADDR, as Go's and PostgreSQL's do), as often as it restarts.
//
// A port picked by listening on port 0 and closing the listener is free
// only for a moment: until the server meant for it starts, or for as long
// as a test needs it to refuse connections, any test binary running at
// the same time may be given it. A reservation closes that window.
//
// It is for tests and for the lab (internal/lab, which the demo runs too),
// on Linux or another Unix.
package testport

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Reservation is a loopback port held for one user.
type Reservation struct {
	Port int
	fd   int
}

// Reserve binds a socket to a free port of 127.0.0.1 without listening on
// it, with SO_REUSEADDR so that a listener can still bind the port.
func Reserve() (*Reservation, error) {
	// Under ForkLock, as the net package does where SOCK_CLOEXEC is
	// missing: a program started meanwhile must not inherit the socket
	// and keep the port after Close.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("testport: socket: %w", err)
	}
	fail := func(op string, err error) (*Reservation, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("testport: %s: %w", op, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind 127.0.0.1:0", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		return fail("getsockname", fmt.Errorf("not an IPv4 address: %T", sa))
	}
	return &Reservation{Port: in4.Port, fd: fd}, nil
}

// Addr is the reserved address, "127.0.0.1:port".
func (r *Reservation) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))
}

// Close releases the port.
func (r *Reservation) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := syscall.Close(r.fd)
	r.fd = -1
	return err
}

// TB is the part of testing.TB that Addr uses. The package does not
// import testing: the lab, and with it the fwagent binary (its demo),
// reserves ports too, and a daemon has no use for the testing package.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// Addr reserves a port for the rest of the test and returns its address,
// "127.0.0.1:port": until a server listens on it, connections to it are
// refused.
func Addr(t TB) string {
	t.Helper()
	r, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r.Addr()
}
