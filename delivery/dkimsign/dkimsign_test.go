package dkimsign

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

const msg = "From: Alice <alice@example.com>\r\nTo: bob@far.example\r\nSubject: hi\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\n\r\nHello  there.\r\n"

func TestSignVerifies(t *testing.T) {
	for _, algo := range []string{"ed25519", "rsa"} {
		t.Run(algo, func(t *testing.T) {
			dir := t.TempDir()
			key, err := Generate(algo, 2048)
			if err != nil {
				t.Fatal(err)
			}
			path := DefaultKeyFile(dir, "example.com", "s1")
			if err := WriteKey(path, key); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
			}
			if err := WriteKey(path, key); err == nil {
				t.Error("WriteKey overwrote an existing key")
			}
			cfg := Config{Domains: map[string]DomainKey{"Example.COM": {Selector: "s1"}}}
			if err := cfg.Validate(dir); err != nil {
				t.Fatal(err)
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			name, value, err := TXTRecord("example.com", "s1", key)
			if err != nil || name != "s1._domainkey.example.com." {
				t.Fatalf("TXTRecord = %q, %v", name, err)
			}
			sig, err := s.Sign("example.com", []byte(msg))
			if err != nil || !bytes.HasPrefix(sig, []byte("DKIM-Signature: ")) {
				t.Fatalf("Sign = %q, %v", sig, err)
			}
			for _, want := range []string{"c=relaxed/relaxed", "d=example.com", "s=s1", "h=From:From:"} {
				if !strings.Contains(strings.ReplaceAll(string(sig), "\r\n ", ""), want) {
					t.Errorf("signature lacks %q: %s", want, sig)
				}
			}
			lookup := &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) {
				if d != "s1._domainkey.example.com" {
					t.Errorf("looked up %q", d)
				}
				return []string{value}, nil
			}}
			check := func(m string) error {
				v, err := dkim.VerifyWithOptions(strings.NewReader(m), lookup)
				if err != nil {
					return err
				}
				if len(v) != 1 {
					t.Fatalf("%d verifications", len(v))
				}
				return v[0].Err
			}
			if err := check(string(sig) + msg); err != nil {
				t.Errorf("signed message does not verify: %v", err)
			}
			// A second From, added on the way, breaks it (oversigning).
			if err := check(string(sig) + "From: mallory@evil.example\r\n" + msg); err == nil {
				t.Error("a message with an added From still verifies")
			}
			if got, err := s.Sign("other.example", []byte(msg)); got != nil || err != nil {
				t.Errorf("a domain without a key: %q, %v; want nothing", got, err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cfg := Config{Domains: map[string]DomainKey{"bad domain": {Selector: "s1"}, "example.com": {Selector: ""}}}
	err := cfg.Validate(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `domains."bad domain"`) || !strings.Contains(err.Error(), `domains."example.com".selector`) {
		t.Errorf("Validate = %v", err)
	}
	cfg = Config{Domains: map[string]DomainKey{"example.com": {Selector: "s1", KeyFile: filepath.Join(t.TempDir(), "none")}}}
	if err := cfg.Validate(""); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), `dkim_signing.domains."example.com".key_file`) {
		t.Errorf("New with a missing key = %v", err)
	}
}
