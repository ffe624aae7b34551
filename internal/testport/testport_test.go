package testport

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestAReservedPortRefusesConnectionsAndTakesAListener(t *testing.T) {
	r, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	refused := func(when string) {
		t.Helper()
		c, err := net.Dial("tcp", r.Addr())
		if err == nil {
			c.Close()
			t.Fatalf("%s: a connection to the reserved port was accepted", when)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("%s: dial = %v, want connection refused", when, err)
		}
	}
	refused("before any listener")
	for i := range 2 { // a server restarted on its port
		ln, err := net.Listen("tcp", r.Addr())
		if err != nil {
			t.Fatalf("listen %d on the reserved port: %v", i, err)
		}
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatalf("dial the listener %d: %v", i, err)
		}
		c.Close()
		ln.Close()
		refused("after the listener closed")
	}
}

func TestCloseReleasesThePort(t *testing.T) {
	r, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("a second Close = %v, want nil", err)
	}
}
