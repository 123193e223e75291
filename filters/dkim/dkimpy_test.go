package dkim

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// TestDkimpy signs with another implementation, dkimpy's dkimsign
// (Debian python3-dkim), and verifies with the filter. Without dkimsign
// the test is skipped, except in CI (CI=true), which installs it.
func TestDkimpy(t *testing.T) {
	dkimsign, err := exec.LookPath("dkimsign")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dkimsign (python3-dkim) is not installed; .ci/run installs it")
		}
		t.Skip("dkimsign not found: apt-get install python3-dkim to run this test")
	}
	k := testKeys(t)
	f, _ := setup(t, DefaultConfig())
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	rsaFile := filepath.Join(dir, "rsa.key")
	edFile := filepath.Join(dir, "ed.key")
	if err := os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// dkimpy reads an Ed25519 private key as the base64 of its seed.
	if err := os.WriteFile(edFile, []byte(base64.StdEncoding.EncodeToString(k.ed.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		selector string
		keyFile  string
		args     []string
	}{
		{"rsa-sha256 relaxed/simple", "rsa", rsaFile, nil},
		{"rsa-sha256 simple/relaxed", "rsa", rsaFile, []string{"--hcanon", "simple", "--bcanon", "relaxed"}},
		{"ed25519-sha256 relaxed/relaxed", "ed", edFile, []string{"--signalg", "ed25519-sha256", "--bcanon", "relaxed"}},
		{"ed25519-sha256 simple/simple", "ed", edFile, []string{"--signalg", "ed25519-sha256", "--hcanon", "simple"}},
		{"rsa-sha256 with i=", "rsa", rsaFile, []string{"--identity", "alice@gen.dkim.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(slices.Clone(tt.args), tt.selector, "gen.dkim.test", tt.keyFile)
			cmd := exec.Command(dkimsign, args...)
			cmd.Stdin = strings.NewReader(plain)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			signed, err := cmd.Output()
			if err != nil {
				t.Fatalf("dkimsign %v: %v: %s", args, err, stderr.String())
			}
			if !bytes.HasPrefix(signed, []byte("DKIM-Signature:")) {
				t.Fatalf("dkimsign wrote %q", signed)
			}
			res := check(t, f, string(signed))
			if got := authValues(res); !slices.Equal(got, []filters.AuthValue{pass}) || !res.HasSymbol(SymValid) {
				t.Fatalf("got %+v, want one valid signature", res)
			}
			// And altering the body breaks it.
			res = check(t, f, strings.Replace(string(signed), "noon", "one", 1))
			if got := authValues(res); !slices.Equal(got, []filters.AuthValue{fail}) {
				t.Errorf("altered: got %+v, want fail", res)
			}
		})
	}
}
