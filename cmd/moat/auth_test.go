package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// authZones are the sender domains of the sender-authentication tests.
// Mail comes from 127.0.0.1.
func authZones(rsaPub, edPub string) map[string]string {
	soa := "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
	return map[string]string{
		// SPF passes from loopback.
		"example.net.": soa + `@ IN TXT "v=spf1 ip4:127.0.0.1 -all"` + "\n",
		// SPF fails from loopback; no DMARC record.
		"forged.example.": soa + `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"` + "\n",
		// Fails SPF, p=reject.
		"reject.example.": soa + `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"` + "\n" +
			`_dmarc IN TXT "v=DMARC1; p=reject"` + "\n",
		// Fails SPF, p=quarantine.
		"quarantine.example.": soa + `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"` + "\n" +
			`_dmarc IN TXT "v=DMARC1; p=quarantine"` + "\n",
		// Fails SPF, p=reject, DKIM keys: only a good signature passes.
		"signed.example.": soa + `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"` + "\n" +
			`_dmarc IN TXT "v=DMARC1; p=reject"` + "\n" +
			`rsa._domainkey IN TXT "v=DKIM1; k=rsa; p=` + rsaPub + `"` + "\n" +
			`ed._domainkey IN TXT "v=DKIM1; k=ed25519; p=` + edPub + `"` + "\n",
		// p=reject, and its SPF record lookup hangs (the test makes it).
		"slow.example.": soa + `@ IN TXT "v=spf1 ip4:127.0.0.1 -all"` + "\n" +
			`_dmarc IN TXT "v=DMARC1; p=reject"` + "\n",
		// No DMARC record, and its SPF record lookup hangs.
		"slownone.example.": soa + `@ IN TXT "v=spf1 ip4:127.0.0.1 -all"` + "\n",
	}
}

// authKeys are a DKIM key pair of each kind, with the files dkimpy's
// dkimsign reads and the public keys for the zone.
type authKeys struct {
	rsaFile, edFile string
	rsaPub, edPub   string
}

func newAuthKeys(t testing.TB) authKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := authKeys{
		rsaFile: filepath.Join(dir, "rsa.key"), edFile: filepath.Join(dir, "ed.key"),
		rsaPub: base64.StdEncoding.EncodeToString(pub), edPub: base64.StdEncoding.EncodeToString(edPub),
	}
	if err := os.WriteFile(k.rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// dkimpy reads an Ed25519 private key as the base64 of its seed.
	if err := os.WriteFile(k.edFile, []byte(base64.StdEncoding.EncodeToString(edPriv.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// startAuthTest starts moat with SPF, DKIM and DMARC on, asking a DNS
// server on loopback that serves zones.
func startAuthTest(t *testing.T, zones map[string]string, extra string) (*app, *dnstest.Server) {
	t.Helper()
	dns := dnstest.Start(t, zones)
	a := startConfig(t, testConfigWith(t.TempDir(), `"rdns", "antivirus"`, fmt.Sprintf(`
[dns]
upstream = %q
timeout = "300ms"
%s`, dns.Addr(), extra)), startOptions{})
	t.Cleanup(func() { a.Close(t.Context()) })
	return a, dns
}

// dkimSign signs msg with dkimpy's dkimsign, a foreign signer.
func dkimSign(t *testing.T, dkimsign, selector, domain, keyFile, msg string, args ...string) string {
	t.Helper()
	cmd := exec.Command(dkimsign, append(args, selector, domain, keyFile)...)
	cmd.Stdin = strings.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !bytes.HasPrefix(out, []byte("DKIM-Signature:")) {
		t.Fatalf("dkimsign %s: %v: %s%s", selector, err, stderr.String(), out)
	}
	return string(out)
}

// TestSenderAuthentication drives SPF, DKIM (signed by dkimpy) and DMARC
// through the SMTP front against a real DNS server on loopback: what each
// domain's policy asks for is what the client gets, a DNS timeout never
// gives a 5xx, and the stored message carries moat's
// Authentication-Results and not a forged one.
func TestSenderAuthentication(t *testing.T) {
	dkimsign := needTool(t, "dkimsign")
	keys := newAuthKeys(t)
	a, dns := startAuthTest(t, authZones(keys.rsaPub, keys.edPub), e2ePolicies)
	dns.Hang("slow.example")
	dns.Hang("slownone.example")
	if _, err := a.store.AddUser(t.Context(), "alice@example.com", "pw", 0); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	plain := func(from, subject string) string {
		return message(from, "alice@example.com", subject, "Lunch at noon?")
	}
	forged := "Authentication-Results: mx.example.com; dmarc=pass header.from=reject.example\r\n"
	signedRSA := dkimSign(t, dkimsign, "rsa", "signed.example", keys.rsaFile, plain("ann@signed.example", "rsa"))
	signedEd := dkimSign(t, dkimsign, "ed", "signed.example", keys.edFile, plain("ann@signed.example", "ed25519"),
		"--signalg", "ed25519-sha256")

	for _, tc2 := range []struct {
		name, from, msg string
		code            int
		ecode           string
	}{
		{"SPF pass", "bob@example.net", plain("bob@example.net", "spf pass"), 250, ""},
		{"DKIM rsa-sha256 by dkimpy, aligned: DMARC passes though SPF fails", "ann@signed.example", signedRSA, 250, ""},
		{"DKIM ed25519-sha256 by dkimpy", "ann@signed.example", signedEd, 250, ""},
		{"altered after signing: p=reject refuses", "ann@signed.example", strings.Replace(signedRSA, "noon", "one", 1), 550, "5.7.1"},
		{"p=reject, SPF fails, no signature", "eve@reject.example", forged + plain("eve@reject.example", "spoof"), 550, "5.7.1"},
		{"p=quarantine", "eve@quarantine.example", plain("eve@quarantine.example", "held"), 250, ""},
		{"SPF times out for a p=reject domain: deferred", "ann@slow.example", plain("ann@slow.example", "slow"), 451, "4.7.1"},
		{"SPF times out, no DMARC record: accepted", "ann@slownone.example", plain("ann@slownone.example", "slow"), 250, ""},
	} {
		t.Run(tc2.name, func(t *testing.T) {
			r := send(t, a.Addr("smtp"), tc, tc2.from, []string{"alice@example.com"}, tc2.msg)
			if r.code != tc2.code || (tc2.ecode != "" && r.ecode != tc2.ecode) {
				t.Fatalf("%v, want %d %s", r, tc2.code, tc2.ecode)
			}
		})
	}

	for series, want := range map[string]string{
		`moat_auth_results_total{method="dkim",result="pass"}`:                        "2",
		`moat_auth_results_total{method="dmarc",result="pass"}`:                       "2",
		`moat_check_demands_total{action="reject",check="dmarc",honoured="true"}`:     "2",
		`moat_check_demands_total{action="quarantine",check="dmarc",honoured="true"}`: "1",
		`moat_check_demands_total{action="tempfail",check="dmarc",honoured="true"}`:   "1",
	} {
		if got := metricValue(t, a, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if got := metricValue(t, a, `moat_dns_lookups_total{check="spf",type="TXT"}`); got == "" || got == "0" {
		t.Errorf("SPF's TXT lookups are not counted: %q", got)
	}

	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	stored := map[string][]string{"INBOX": fetchAll(t, c, "INBOX"), "Quarantine": fetchAll(t, c, "Quarantine")}
	if n := len(stored["INBOX"]); n != 4 {
		t.Errorf("INBOX holds %d messages, want 4", n)
	}
	if n := len(stored["Quarantine"]); n != 1 {
		t.Errorf("Quarantine holds %d messages, want 1", n)
	}
	for _, msgs := range stored {
		for _, m := range msgs {
			if strings.Contains(m, "dmarc=pass header.from=reject.example") {
				t.Errorf("a forged Authentication-Results field was stored:\n%s", m)
			}
		}
	}
	find := func(folder, subject string) string {
		for _, m := range stored[folder] {
			if strings.Contains(m, "\r\nSubject: "+subject+"\r\n") {
				return m
			}
		}
		return ""
	}
	for _, w := range []struct{ folder, subject string }{
		{"INBOX", "spf pass"}, {"INBOX", "rsa"}, {"INBOX", "ed25519"}, {"Quarantine", "held"}, {"INBOX", "slow"},
	} {
		m := find(w.folder, w.subject)
		if m == "" {
			t.Errorf("no message %q in %s", w.subject, w.folder)
			continue
		}
		ar := authResults(m)
		want := map[string][]string{
			"spf pass": {"spf=pass ", " smtp.mailfrom=bob@example.net;", "dmarc=none ", " header.from=example.net"},
			"rsa": {"spf=fail ", "dkim=pass header.d=signed.example header.s=rsa ", "header.a=rsa-sha256",
				"dmarc=pass ", " header.from=signed.example"},
			"ed25519": {"dkim=pass header.d=signed.example header.s=ed ", "header.a=ed25519-sha256", "dmarc=pass "},
			"held":    {"spf=fail ", "dmarc=fail ", " header.from=quarantine.example"},
			"slow":    {"spf=temperror ", " smtp.mailfrom=ann@slownone.example"},
		}[w.subject]
		for _, s := range want {
			if !strings.Contains(ar, s) {
				t.Errorf("%s: Authentication-Results lacks %q:\n%s", w.subject, s, ar)
			}
		}
	}
}

// authResults returns moat's Authentication-Results field of a stored
// message, unfolded.
func authResults(msg string) string {
	i := strings.Index(msg, "Authentication-Results: mx.example.com;")
	if i < 0 {
		return ""
	}
	field := msg[i:]
	end := 0
	for {
		j := strings.Index(field[end:], "\r\n")
		if j < 0 {
			break
		}
		end += j + 2
		if end >= len(field) || (field[end] != ' ' && field[end] != '\t') {
			break
		}
	}
	return strings.ReplaceAll(field[:end], "\r\n\t", " ")
}
