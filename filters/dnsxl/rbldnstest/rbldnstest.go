// Package rbldnstest runs Debian's rbldnsd, the daemon most DNS lists are
// served with, on loopback for tests: the test writes the list data, and
// the code under test asks real DNS over UDP.
//
//	srv := rbldnstest.Start(t, rbldnstest.Dataset{Zone: "bl.test", Type: "ip4set", Data: "192.0.2.5\n"})
//	cfg := resolver.DefaultConfig()
//	cfg.Upstream = srv.Addr()
//
// rbldnsd answers queries with the RD bit as an authoritative server
// does, so moat's resolver can ask it directly. It speaks UDP only. When
// rbldnsd is not installed the test is skipped with the reason, except
// when the environment variable CI is "true", where it fails.
package rbldnstest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/moatmail/moat/filters/resolver"
)

// Dataset is one rbldnsd dataset of a zone.
type Dataset struct {
	// Zone is the zone served, such as "bl.test".
	Zone string
	// Type is the rbldnsd dataset type: "ip4set" for IPv4 addresses and
	// ranges, "ip6trie" for IPv6 ones, "dnset" for domain names.
	Type string
	// Data is the dataset file, in rbldnsd's format (see rbldnsd(8)):
	// one entry a line, ":127.0.0.4:" after an entry for its answer.
	// An SOA record is added in front, so that negative answers can be
	// cached.
	Data string
}

// Server is a running rbldnsd.
type Server struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
}

// Addr returns the "127.0.0.1:port" address rbldnsd answers on (UDP).
func (s *Server) Addr() string { return s.addr }

// Start writes the datasets and runs rbldnsd on them on a free loopback
// port until the test ends.
func Start(t testing.TB, sets ...Dataset) *Server {
	t.Helper()
	bin, err := exec.LookPath("rbldnsd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rbldnsd is not installed (apt-get install rbldnsd); CI=true requires it")
		}
		t.Skip("rbldnsd is not installed (apt-get install rbldnsd): skipping the test against a real DNS list server")
	}
	dir := t.TempDir()
	// rbldnsd started as root reads its data as the user rbldns, inside
	// the folder it chroots to.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var specs []string
	for i, ds := range sets {
		name := fmt.Sprintf("set%d", i)
		soa := fmt.Sprintf("$SOA 60 ns.%s. hostmaster.%s. 1 60 60 60 60\n", ds.Zone, ds.Zone)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(soa+ds.Data), 0o644); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, ds.Zone+":"+ds.Type+":"+name)
	}
	var lastErr error
	for range 10 {
		s, err := start(bin, dir, specs)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		lastErr = err // most likely the port was taken meanwhile
	}
	t.Fatalf("rbldnsd: %v", lastErr)
	return nil
}

// start runs rbldnsd on a free port and waits until it answers.
func start(bin, dir string, specs []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-n", "-c", "0", "-b", "127.0.0.1/" + port, "-r", dir}, specs...)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{addr: net.JoinHostPort("127.0.0.1", port), cmd: cmd, exited: make(chan struct{})}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("exited (%v): %s", waitErr, strings.TrimSpace(out.String()))
		default:
		}
		if s.answers(strings.SplitN(specs[0], ":", 2)[0]) {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("did not answer within 5s: " + strings.TrimSpace(out.String()))
}

// answers reports whether the server answers an SOA query for zone.
func (s *Server) answers(zone string) bool {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	r, _, err := c.Exchange(m, s.addr)
	return err == nil && r.Rcode == dns.RcodeSuccess
}

// freePort returns a loopback UDP port that was free a moment ago.
func freePort() (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer pc.Close()
	_, port, err := net.SplitHostPort(pc.LocalAddr().String())
	return port, err
}

// stop ends the rbldnsd this package started, by its pid: SIGTERM, then
// SIGKILL if it has not ended within two seconds.
func (s *Server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Resolver returns moat's resolver asking addr (an rbldnsd's, or a
// dnstest server's) with a cache of cacheSize answers (0: none, so that
// every lookup reaches the server), and a timeout of a second: long
// enough that a loaded test machine does not retry a query. A test that
// makes a server hang bounds its wait with its context.
func Resolver(t testing.TB, addr string, cacheSize int) *resolver.DNS {
	t.Helper()
	cfg := resolver.DefaultConfig()
	cfg.Upstream = addr
	cfg.Timeout = time.Second
	cfg.CacheSize = cacheSize
	r, err := resolver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
