package antivirus

// Integration tests against Debian's clamav-daemon, started by each test
// with a signature database written into its temporary folder: EICAR (an
// MD5 signature made by sigtool) and a body signature of our own
// (testdata/clamd/moat-test.ndb). No network and no freshclam: start-up
// takes a fraction of a second.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/moatmail/moat/filters"
)

// eicar is the EICAR anti-virus test file
// (https://www.eicar.org/download-anti-malware-testfile/).
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// eicarSigName is the name sigtool gives the EICAR signature: the name of
// the file it hashed. clamd appends ".UNOFFICIAL" to names from unsigned
// databases.
const eicarSigName = "Moat.Test.EICAR"

// marker is what testdata/clamd/moat-test.ndb matches, anywhere in any
// file; markerSigName is that signature's name.
const (
	marker        = "MOAT-AV-TEST-MARKER-5d1c0b6e"
	markerSigName = "Moat.Test.Marker-1"
)

// testdataDir holds clamd.conf.tmpl and moat-test.ndb.
const testdataDir = "../../testdata/clamd"

// clamdStreamMax is StreamMaxLength in clamd.conf.tmpl.
const clamdStreamMax = 1 << 20

// testClamd is a clamd started by a test.
type testClamd struct {
	cmd  *exec.Cmd
	unix string // "unix:/..." address
	tcp  string // "tcp:127.0.0.1:PORT" address
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
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

// needProgram returns the path of a ClamAV program, or skips the test
// (fails it under CI=true, where clamav-daemon must be installed). clamd is
// in /usr/sbin, which a user's PATH may lack.
func needProgram(t testing.TB, name string) string {
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

// startClamd starts clamd on a fresh database in a temporary folder,
// listening on a unix socket and on a loopback TCP port, and waits until
// it answers PING. It is stopped when the test ends.
func startClamd(t testing.TB) *testClamd {
	t.Helper()
	clamdPath := needProgram(t, "clamd")
	sigtool := needProgram(t, "sigtool")

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
	eicarFile := filepath.Join(dir, eicarSigName)
	if err := os.WriteFile(eicarFile, []byte(eicar), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sigtool, "--md5", eicarSigName)
	cmd.Dir = dir
	hdb, err := cmd.Output()
	if err != nil {
		t.Fatalf("sigtool --md5: %v", err)
	}
	if !bytes.Contains(hdb, []byte(":"+strconv.Itoa(len(eicar))+":"+eicarSigName)) {
		t.Fatalf("sigtool --md5 wrote %q, want md5:%d:%s", hdb, len(eicar), eicarSigName)
	}
	if err := os.WriteFile(filepath.Join(db, "test.hdb"), hdb, 0o600); err != nil {
		t.Fatal(err)
	}
	ndb, err := os.ReadFile(filepath.Join(testdataDir, "moat-test.ndb"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "moat-test.ndb"), ndb, 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	socket := filepath.Join(dir, "clamd.sock")
	tmpl, err := template.ParseFiles(filepath.Join(testdataDir, "clamd.conf.tmpl"))
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

	c := &testClamd{
		unix: "unix:" + socket,
		tcp:  "tcp:127.0.0.1:" + strconv.Itoa(port),
		out:  &syncBuffer{},
		done: make(chan struct{}),
	}
	c.cmd = exec.Command(clamdPath, "-c", confFile)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("clamd output:\n%s", c.out)
		}
	})

	// Bounded poll: clamd with two signatures is up in well under a
	// second; give it ten.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err1 := ping(c.unix)
		err2 := ping(c.tcp)
		if err1 == nil && err2 == nil {
			return c
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

// stop ends clamd (SIGTERM, then SIGKILL) and waits for it.
func (c *testClamd) stop() {
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

// kill ends clamd at once, as a crash would, and waits for it. Its socket
// file stays behind.
func (c *testClamd) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill clamd: %v", err)
	}
	<-c.done
}

// ping sends zPING and wants PONG.
func ping(address string) error {
	network, addr, err := ParseAddress(address)
	if err != nil {
		return err
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
	reply, err := readReply(conn)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING: got %q", reply)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mimeMessage builds a multipart message with a text part and one base64
// attachment holding payload.
func mimeMessage(payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: Sender <sender@example.net>\r\n" +
		"To: rcpt@example.com\r\n" +
		"Subject: the file you asked for\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <av-test@example.net>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_moat_boundary\"\r\n" +
		"\r\n" +
		"--=_moat_boundary\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n" +
		"\r\n" +
		"Please find the file attached.\r\n" +
		"--=_moat_boundary\r\n" +
		"Content-Type: application/octet-stream; name=\"file.com\"\r\n" +
		"Content-Disposition: attachment; filename=\"file.com\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n")
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=_moat_boundary--\r\n")
	return b.Bytes()
}

// readClean reads a clean message, testdata/messages/clean.eml.
func readClean(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/messages/clean.eml")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestClamdScan(t *testing.T) {
	c := startClamd(t)
	clean := readClean(t)
	eicarMsg := mimeMessage([]byte(eicar))
	markerMsg := mimeMessage([]byte("header bytes " + marker + " trailer bytes"))
	if bytes.Contains(eicarMsg, []byte("EICAR")) || bytes.Contains(markerMsg, []byte(marker)) {
		t.Fatal("test messages must hide their payload in base64, so that clamd has to decode MIME")
	}
	big := mimeMessage(bytes.Repeat([]byte("0123456789abcdef"), 2*clamdStreamMax/16))

	tests := []struct {
		name     string
		raw      []byte
		wantSym  string // "" for no symbol
		wantSig  string // prefix of the reason, for VIRUS
		wantSize bool
	}{
		{name: "clean", raw: clean},
		{name: "clean multipart", raw: mimeMessage([]byte("just a harmless attachment"))},
		{name: "eicar base64 attachment", raw: eicarMsg, wantSym: SymVirus, wantSig: eicarSigName},
		{name: "eicar bare", raw: []byte(eicar), wantSym: SymVirus, wantSig: eicarSigName},
		{name: "custom signature in attachment", raw: markerMsg, wantSym: SymVirus, wantSig: markerSigName},
		{name: "custom signature in text", raw: append(bytes.Clone(clean), []byte(marker+"\r\n")...), wantSym: SymVirus, wantSig: markerSigName},
		{name: "over clamd StreamMaxLength", raw: big, wantSym: SymSkippedSize, wantSize: true},
	}
	for _, addr := range []string{c.unix, c.tcp} {
		cfg := DefaultConfig()
		cfg.Address = addr
		cfg.VirusScore = 777
		f, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(addr[:strings.IndexByte(addr, ':')]+"/"+tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				syms, err := f.Check(ctx, &filters.Input{Msg: filters.ParseMessage(tt.raw)})
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if tt.wantSym == "" {
					if len(syms) != 0 {
						t.Fatalf("symbols %+v, want none", syms)
					}
					return
				}
				if len(syms) != 1 || syms[0].Name != tt.wantSym {
					t.Fatalf("symbols %+v, want one %s", syms, tt.wantSym)
				}
				s := syms[0]
				switch tt.wantSym {
				case SymVirus:
					if s.Score != 777 {
						t.Errorf("score %v, want virus_score 777", s.Score)
					}
					if !strings.HasPrefix(s.Reason, tt.wantSig) {
						t.Errorf("reason %q, want the signature name %s...", s.Reason, tt.wantSig)
					}
				case SymSkippedSize:
					if s.Score != 0 || !strings.Contains(s.Reason, "StreamMaxLength") {
						t.Errorf("got %+v, want score 0 and a reason naming StreamMaxLength", s)
					}
				}
			})
		}
	}
}

// TestClamdConcurrent scans from many goroutines at once, as sessions do.
func TestClamdConcurrent(t *testing.T) {
	c := startClamd(t)
	cfg := DefaultConfig()
	cfg.Address = c.unix
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clean := filters.ParseMessage(readClean(t))
	virus := filters.ParseMessage(mimeMessage([]byte(eicar)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			msg, want := clean, 0
			if i%2 == 1 {
				msg, want = virus, 1
			}
			syms, err := f.Check(ctx, &filters.Input{Msg: msg})
			if err != nil {
				errs <- err
				return
			}
			if len(syms) != want {
				errs <- fmt.Errorf("scan %d: symbols %+v, want %d", i, syms, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClamdKilled kills clamd between two scans: the second is an error,
// neither a clean verdict nor a symbol.
func TestClamdKilled(t *testing.T) {
	c := startClamd(t)
	in := &filters.Input{Msg: filters.ParseMessage(mimeMessage([]byte(eicar)))}
	var fs []*Filter
	for _, addr := range []string{c.unix, c.tcp} {
		cfg := DefaultConfig()
		cfg.Address = addr
		f, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	scan := func(f *Filter) ([]filters.Symbol, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f.Check(ctx, in)
	}
	for _, f := range fs {
		if syms, err := scan(f); err != nil || len(syms) != 1 || syms[0].Name != SymVirus {
			t.Fatalf("%s before the kill: %+v, %v; want VIRUS", f.clamd, syms, err)
		}
	}
	c.kill(t)
	for _, f := range fs {
		syms, err := scan(f)
		if err == nil || syms != nil {
			t.Errorf("%s after the kill: symbols %+v, error %v; want an error and no symbols", f.clamd, syms, err)
		}
		if err != nil && !strings.Contains(err.Error(), "connect") {
			t.Errorf("%s after the kill: error %q, want a connect error", f.clamd, err)
		}
	}
}

func BenchmarkScan10KB(b *testing.B) {
	c := startClamd(b)
	cl, err := NewClamd(c.unix)
	if err != nil {
		b.Fatal(err)
	}
	raw := append(readClean(b), bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog, again and again.\r\n"), 10_000/64)...)
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := cl.Scan(ctx, raw)
		if err != nil {
			b.Fatal(err)
		}
		if res.Status != StatusClean {
			b.Fatalf("status %v, want clean", res.Status)
		}
	}
}
