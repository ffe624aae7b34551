package nvrsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// debugWriter sends the HTTP server's own complaints (TLS handshake errors
// from clients that refuse the certificate, ...) to the log at debug level.
type debugWriter struct{ log logrus.FieldLogger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Server is a simulated recorder listening on a real socket.
type Server struct {
	*Sim
	srv         *http.Server
	ln          net.Listener
	url         string
	cert        *x509.Certificate
	fingerprint string
	done        chan error
	stopOnce    sync.Once
	stopErr     error
}

// Start runs a simulated recorder on 127.0.0.1 on a free port, over HTTPS
// with a fresh self-signed certificate when cfg.TLS is set.
func Start(cfg Config) (*Server, error) {
	return Listen("127.0.0.1:0", cfg)
}

// Listen runs a simulated recorder on addr ("host:port"), like Start.
func Listen(addr string, cfg Config) (*Server, error) {
	sim, err := NewChecked(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nvrsim: cannot listen on %s: %w", addr, err)
	}
	s := &Server{
		Sim:  sim,
		ln:   ln,
		done: make(chan error, 1),
		srv: &http.Server{
			Handler:           sim.Handler(),
			ReadHeaderTimeout: 30 * time.Second,
			// Recorders speak HTTP/1.1 only; hijacking needs it too.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
			ErrorLog:     log.New(debugWriter{sim.cfg.Logger}, "", 0),
		},
	}
	scheme := "http"
	if sim.cfg.TLS {
		cert, der, err := selfSigned(ln.Addr())
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		s.cert, _ = x509.ParseCertificate(der)
		sum := sha256.Sum256(der)
		s.fingerprint = hex.EncodeToString(sum[:])
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.ln = tls.NewListener(ln, s.srv.TLSConfig)
		scheme = "https"
	}
	s.url = scheme + "://" + ln.Addr().String()
	go func() { s.done <- s.srv.Serve(s.ln) }()
	sim.cfg.Logger.WithField("url", s.url).Info("simulated recorder listening")
	return s, nil
}

// URL is the recorder's base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// Fingerprint is the lowercase hex SHA-256 of the TLS certificate's DER
// bytes, for pinning; empty without TLS.
func (s *Server) Fingerprint() string { return s.fingerprint }

// Certificate is the self-signed TLS certificate; nil without TLS.
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// Close stops listening, drops every connection and stops the simulator.
// Closing twice (or after Shutdown) returns the first result.
func (s *Server) Close() error {
	s.stopOnce.Do(func() {
		s.Sim.Close()
		err := s.srv.Close()
		if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		s.stopErr = err
	})
	return s.stopErr
}

// Shutdown stops listening and waits for requests in flight, bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.Sim.Close()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		<-s.done
		s.stopErr = err
	})
	return s.stopErr
}

// selfSigned makes an ECDSA P-256 certificate for the listening address,
// 127.0.0.1, ::1 and localhost, as recorders ship.
func selfSigned(addr net.Addr) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("nvrsim: cannot make a TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("nvrsim: cannot make a certificate serial: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ta, ok := addr.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		ips = append(ips, ta.IP)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "nvrsim", Organization: []string{"fwagent NVR simulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           ips,
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("nvrsim: cannot make a certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, nil
}
