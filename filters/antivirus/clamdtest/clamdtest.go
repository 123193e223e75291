// Package clamdtest starts Debian's clamav-daemon for tests, on a signature
// database written into the test's temporary folder: EICAR (an MD5
// signature made by sigtool) and a body signature of moat's own
// (testdata/clamd/moat-test.ndb). No network and no freshclam: start-up
// takes a fraction of a second. When clamd is not installed the test is
// skipped, or failed under CI=true.
package clamdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

// EICAR is the EICAR anti-virus test file
// (https://www.eicar.org/download-anti-malware-testfile/).
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// EICARSignature is the name sigtool gives the EICAR signature: the name of
// the file it hashed. clamd appends ".UNOFFICIAL" to names from unsigned
// databases.
const EICARSignature = "Moat.Test.EICAR"

// Marker is what testdata/clamd/moat-test.ndb matches, anywhere in any
// file; MarkerSignature is that signature's name.
const (
	Marker          = "MOAT-AV-TEST-MARKER-5d1c0b6e"
	MarkerSignature = "Moat.Test.Marker-1"
)

// testdataDir returns the folder of clamd.conf.tmpl and moat-test.ndb,
// wherever the calling test's package is.
func testdataDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "clamd")
}

// StreamMax is StreamMaxLength in clamd.conf.tmpl.
const StreamMax = 1 << 20

// Clamd is a clamd started by a test.
type Clamd struct {
	// Unix and TCP are its addresses, in the antivirus filter's syntax:
	// "unix:/path" and "tcp:127.0.0.1:PORT".
	Unix, TCP string
	path      string // the clamd program
	conf      string // its clamd.conf
	cmd       *exec.Cmd
	out       *syncBuffer
	done      chan struct{} // closed when the current process has exited
}

// syncBuffer collects clamd's output from its two pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NeedProgram returns the path of a ClamAV program, or skips the test
// (fails it under CI=true, where clamav-daemon must be installed). clamd is
// in /usr/sbin, which a user's PATH may lack.
func NeedProgram(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI must install it (apt-get install clamav-daemon clamav)", name)
	}
	t.Skipf("%s is not installed: skipping the clamd tests (apt-get install clamav-daemon clamav)", name)
	return ""
}

// Start starts clamd on a fresh database in a temporary folder, listening
// on a unix socket and on a loopback TCP port, and waits until it answers
// PING. It is stopped when the test ends.
func Start(t testing.TB) *Clamd {
	t.Helper()
	clamdPath := NeedProgram(t, "clamd")
	sigtool := NeedProgram(t, "sigtool")

	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{db, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// EICAR: an MD5 signature of the file, made the way a ClamAV user
	// makes one (sigtool --md5 FILE > DB/test.hdb).
	eicarFile := filepath.Join(dir, EICARSignature)
	if err := os.WriteFile(eicarFile, []byte(EICAR), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sigtool, "--md5", EICARSignature)
	cmd.Dir = dir
	hdb, err := cmd.Output()
	if err != nil {
		t.Fatalf("sigtool --md5: %v", err)
	}
	if !bytes.Contains(hdb, []byte(":"+strconv.Itoa(len(EICAR))+":"+EICARSignature)) {
		t.Fatalf("sigtool --md5 wrote %q, want md5:%d:%s", hdb, len(EICAR), EICARSignature)
	}
	if err := os.WriteFile(filepath.Join(db, "test.hdb"), hdb, 0o600); err != nil {
		t.Fatal(err)
	}
	ndb, err := os.ReadFile(filepath.Join(testdataDir(), "moat-test.ndb"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "moat-test.ndb"), ndb, 0o600); err != nil {
		t.Fatal(err)
	}

	port := FreePort(t)
	socket := filepath.Join(dir, "clamd.sock")
	tmpl, err := template.ParseFiles(filepath.Join(testdataDir(), "clamd.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, map[string]any{
		"Socket": socket, "Port": port, "DB": db, "Tmp": tmp, "Dir": dir,
	}); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	c := &Clamd{
		Unix: "unix:" + socket,
		TCP:  "tcp:127.0.0.1:" + strconv.Itoa(port),
		path: clamdPath,
		conf: confFile,
		out:  &syncBuffer{},
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("clamd output:\n%s", c.out)
		}
	})
	c.run(t)
	return c
}

// Restart starts clamd again, on the same addresses and database, after
// Kill or Stop, and waits until it answers PING.
func (c *Clamd) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-c.done:
	default:
		t.Fatal("clamdtest: Restart of a clamd that is running")
	}
	// A killed clamd leaves its socket file, which the new one refuses
	// to replace.
	_ = os.Remove(strings.TrimPrefix(c.Unix, "unix:"))
	c.run(t)
}

// run starts the process and waits until both addresses answer PING.
func (c *Clamd) run(t testing.TB) {
	t.Helper()
	c.done = make(chan struct{})
	c.cmd = exec.Command(c.path, "-c", c.conf)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	done := c.done
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()

	// Bounded poll: clamd with two signatures is up in well under a
	// second; give it ten.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err1 := ping(c.Unix)
		err2 := ping(c.TCP)
		if err1 == nil && err2 == nil {
			return
		}
		select {
		case <-c.done:
			t.Fatalf("clamd exited before answering (%v, %v):\n%s", err1, err2, c.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("clamd did not answer PING within 10s (%v, %v):\n%s", err1, err2, c.out)
		}
	}
}

// Stop ends clamd (SIGTERM, then SIGKILL) and waits for it.
func (c *Clamd) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// Kill ends clamd at once, as a crash would, and waits for it. Its socket
// file stays behind.
func (c *Clamd) Kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill clamd: %v", err)
	}
	<-c.done
}

// ping sends zPING and wants PONG.
func ping(address string) error {
	network, addr := "unix", strings.TrimPrefix(address, "unix:")
	if rest, ok := strings.CutPrefix(address, "tcp:"); ok {
		network, addr = "tcp", rest
	}
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if reply := strings.TrimRight(string(buf[:n]), "\x00\n"); reply != "PONG" {
		return fmt.Errorf("PING: got %q", reply)
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
