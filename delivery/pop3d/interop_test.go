package pop3d

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needTool returns the path of an external program, or skips the test
// (fails it under CI=true, where every tool must be installed).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install it", name)
		}
		t.Skipf("%s is not installed: skipping (apt-get install %s)", name, name)
	}
	return p
}

// interopMessages are stored for the external clients: CRLF and bare-LF
// messages, lines that need dot-stuffing, and one large enough to go to a
// file even when small ones are inline.
func interopMessages() []string {
	return []string{
		message("first", "Hello over POP3.\r\n"),
		message("dots", ".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n"),
		"From: carol@example.net\nTo: alice@example.com\nSubject: bare lf\n\nline one\nline two\n",
		message("large", strings.Repeat("0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", 3000)),
	}
}

// pythonPOP is run by TestPythonPoplib. poplib is the client of Python's
// standard library: STLS (RFC 2595), USER/PASS, STAT, LIST, UIDL, RETR,
// TOP, DELE, QUIT, then POP3S with AUTH PLAIN.
const pythonPOP = `
import base64, json, poplib, ssl, sys
host, port, tlsport, cafile, user, pw = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
out = {}
p = poplib.POP3(host, int(port), timeout=30)
out["capa_before"] = sorted(p.capa().keys())
p.stls(context=ctx)
out["capa_after"] = sorted(p.capa().keys())
p.user(user)
p.pass_(pw)
count, size = p.stat()
out["stat"] = [count, size]
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["retr"] = [b"\r\n".join(p.retr(i)[1]).decode("latin-1") for i in range(1, count + 1)]
out["top"] = b"\r\n".join(p.top(2, 1)[1]).decode("latin-1")
p.dele(1)
out["quit"] = p.quit().decode()
s = poplib.POP3_SSL(host, int(tlsport), context=ctx, timeout=30)
plain = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
out["auth"] = s._shortcmd("AUTH PLAIN " + plain).decode()
out["stat2"] = list(s.stat())
s.quit()
print(json.dumps(out))
`

func TestPythonPoplib(t *testing.T) {
	python := needTool(t, "python3")
	e := newEnv(t, Config{})
	msgs := interopMessages()
	var total int
	var uidls []string
	for _, m := range msgs {
		uid := e.deliver(t, e.alice, m)
		total += len(m)
		uidls = append(uidls, fmt.Sprint(uid))
	}
	_, mb := e.inbox(t, e.alice)
	script := filepath.Join(t.TempDir(), "pop.py")
	if err := os.WriteFile(script, []byte(pythonPOP), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port := splitAddr(t, e.addr)
	_, tlsPort := splitAddr(t, e.tlsAddr)
	cmd := exec.Command(python, script, host, port, tlsPort, e.certFile, aliceAddr, alicePass)
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("poplib script: %v\n%s", err, stderrOf(err))
	}
	var out struct {
		CapaBefore []string `json:"capa_before"`
		CapaAfter  []string `json:"capa_after"`
		Stat       []int
		List       []string
		UIDL       []string
		Retr       []string
		Top        string
		Quit       string
		Auth       string
		Stat2      []int
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("poplib output %q: %v", outb, err)
	}
	if !slices.Contains(out.CapaBefore, "STLS") || slices.Contains(out.CapaBefore, "USER") {
		t.Errorf("CAPA before STLS = %v, want STLS and no USER", out.CapaBefore)
	}
	if !slices.Contains(out.CapaAfter, "USER") || !slices.Contains(out.CapaAfter, "SASL") || slices.Contains(out.CapaAfter, "STLS") {
		t.Errorf("CAPA after STLS = %v, want USER and SASL, no STLS", out.CapaAfter)
	}
	if want := []int{len(msgs), total}; !slices.Equal(out.Stat, want) {
		t.Errorf("STAT = %v, want %v", out.Stat, want)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("%d %d", i+1, len(m)); i >= len(out.List) || out.List[i] != want {
			t.Errorf("LIST line %d = %q, want %q", i+1, out.List, want)
		}
		if want := fmt.Sprintf("%d %d.%s", i+1, mb.UIDValidity, uidls[i]); i >= len(out.UIDL) || out.UIDL[i] != want {
			t.Errorf("UIDL line %d = %q, want %q", i+1, out.UIDL, want)
		}
		// poplib drops the line ends and undoes the dot-stuffing.
		if want := strings.TrimSuffix(crlf(m), "\r\n"); i >= len(out.Retr) || out.Retr[i] != want {
			t.Errorf("RETR %d differs:\n got %.300q\nwant %.300q", i+1, out.Retr, want)
		}
	}
	if want := "From: carol@example.net\r\nTo: alice@example.com\r\nSubject: dots\r\nMessage-ID: <dots@example.net>\r\n\r\n.leading dot"; out.Top != want {
		t.Errorf("TOP 2 1 = %q, want %q", out.Top, want)
	}
	if !strings.HasPrefix(out.Quit, "+OK") || !strings.HasPrefix(out.Auth, "+OK") {
		t.Errorf("QUIT %q, AUTH PLAIN %q", out.Quit, out.Auth)
	}
	if want := []int{len(msgs) - 1, total - len(msgs[0])}; !slices.Equal(out.Stat2, want) {
		t.Errorf("STAT after DELE 1 and QUIT = %v, want %v", out.Stat2, want)
	}
	t.Logf("poplib: STLS + USER/PASS, %d messages (%d bytes) retrieved; POP3S + AUTH PLAIN", out.Stat[0], out.Stat[1])
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	return addr[:i], addr[i+1:]
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestFetchmail runs fetchmail over POP3 with STLS required and the
// certificate checked, delivering through an MDA into a folder: first with
// keep (the server's INBOX must be unchanged), then without (it must be
// empty).
func TestFetchmail(t *testing.T) {
	fetchmail := needTool(t, "fetchmail")
	e := newEnv(t, Config{})
	msgs := interopMessages()
	for _, m := range msgs {
		e.deliver(t, e.alice, m)
	}
	before, _ := e.inbox(t, e.alice)
	_, port := splitAddr(t, e.addr)
	home := t.TempDir()

	for _, tc := range []struct {
		keep      bool
		wantInbox []uint32
	}{
		{true, before},
		{false, []uint32{}},
	} {
		t.Run(fmt.Sprintf("keep=%v", tc.keep), func(t *testing.T) {
			drop := t.TempDir()
			mda := filepath.Join(home, "mda.sh")
			if err := os.WriteFile(mda, []byte("#!/bin/sh\nexec cat > \"$(mktemp "+drop+"/msg.XXXXXX)\"\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			keep := "nokeep"
			if tc.keep {
				keep = "keep"
			}
			// sslproto without ssl makes STLS mandatory (fetchmail ≥ 6.4);
			// sslcertck checks the chain against sslcertfile, and the
			// certificate's name against sslcommonname (fetchmail does
			// not match IP address entries).
			rc := fmt.Sprintf(`set no syslog
poll 127.0.0.1 service %s protocol POP3 auth password timeout 30
  user %q there with password %q
  sslproto "tls1.2+" sslcertck sslcertfile %q sslcommonname "localhost"
  mda %q
  fetchall %s no stripcr
`, port, aliceAddr, alicePass, e.certFile, mda, keep)
			rcfile := filepath.Join(home, "fetchmailrc")
			if err := os.WriteFile(rcfile, []byte(rc), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(fetchmail, "-v", "-f", rcfile, "--idfile", filepath.Join(home, "fetchids"), "-d0")
			cmd.Env = append(os.Environ(), "HOME="+home, "FETCHMAILHOME="+home)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fetchmail: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "STLS") {
				t.Errorf("fetchmail did not use STLS:\n%s", out)
			}
			files, err := filepath.Glob(filepath.Join(drop, "msg.*"))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(msgs) {
				t.Fatalf("fetchmail delivered %d messages, want %d\n%s", len(files), len(msgs), out)
			}
			// Each delivered file is a stored message, perhaps below a
			// Received: field fetchmail adds; match them up by content.
			var delivered, bytes int
			for _, m := range msgs {
				want := crlf(m)
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasSuffix(string(b), want) {
						delivered++
						bytes += len(want)
						break
					}
				}
			}
			if delivered != len(msgs) {
				t.Errorf("%d of %d messages arrived intact\n%s", delivered, len(msgs), out)
			}
			if got, _ := e.inbox(t, e.alice); !slices.Equal(got, tc.wantInbox) {
				t.Errorf("server INBOX after fetchmail (%s) = %v, want %v", keep, got, tc.wantInbox)
			}
			t.Logf("fetchmail (%s): %d messages, %d bytes, over STLS", keep, delivered, bytes)
		})
	}
}
