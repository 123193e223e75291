package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestReload changes the rules of a running moat, and checks that a broken
// configuration leaves the running one in place.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "moat.toml")
	base := testConfig(filepath.Join(dir, "data"), "")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(cfg, discardLogger(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, cfg.DataDir)
	try := func() int {
		return send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
			message("bob@example.net", "alice@example.com", "reload me", "x")).code
	}
	if code := try(); code != 250 {
		t.Fatalf("before reload: %d", code)
	}
	withRule := base + `
[[rules.rule]]
name = "RELOADED"
expr = 'header("Subject") contains "reload me"'
action = "reject"
`
	os.WriteFile(path, []byte(withRule), 0o600)
	dns := a.dns
	if err := a.reload(path); err != nil {
		t.Fatal(err)
	}
	if a.dns != dns || dns == nil {
		t.Errorf("the reload built another resolver (its cache would be lost)")
	}
	if code := try(); code != 550 {
		t.Fatalf("after reload: %d, want 550", code)
	}
	os.WriteFile(path, []byte(strings.Replace(withRule, `action = "reject"`, `action = "explode"`, 1)), 0o600)
	if err := a.reload(path); err == nil || !strings.Contains(err.Error(), "rules.rule[0]") {
		t.Fatalf("broken reload: %v, want an error naming rules.rule[0]", err)
	}
	if code := try(); code != 550 {
		t.Fatalf("after a failed reload: %d, want the previous configuration's 550", code)
	}
}
