package mailstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotAndCheck: a snapshot holds every message, inline or in a
// file; a message expunged between the index copy and the file copy is
// dropped from the copy, which stays consistent; a file missing while the
// live index references it fails the snapshot; Check reports a missing
// file, a wrong size and an orphan.
func TestSnapshotAndCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, InlineMax: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := addTestUsers(t, s, "alice@example.com")[0]
	var placed []Placed
	for _, body := range []string{"small", strings.Repeat("large ", 100), strings.Repeat("larger ", 100)} {
		p, err := s.Deliver(ctx, &Delivery{Header: []byte("Subject: x\r\n\r\n"), Body: []byte(body),
			Targets: []Target{{UserID: u.ID, Mailbox: "INBOX"}}})
		if err != nil {
			t.Fatal(err)
		}
		placed = append(placed, p[0])
	}
	snap := filepath.Join(t.TempDir(), "snap")
	res, err := Snapshot(ctx, dir, snap)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || res.Inline != 1 || res.Dropped != 0 {
		t.Errorf("snapshot: %+v, want 2 files, 1 inline", res)
	}
	if p, err := Check(ctx, snap, CheckOptions{}); err != nil || len(p) > 0 {
		t.Errorf("check of the snapshot: %v %v", p, err)
	}

	// Expunged between the index copy and the file copy.
	late := filepath.Join(t.TempDir(), "late")
	if err := os.MkdirAll(late, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := VacuumInto(ctx, filepath.Join(dir, indexFile), filepath.Join(late, indexFile)); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.RemoveMessages(placed[1].MailboxID, []uint32{placed[1].UID}) }); err != nil {
		t.Fatal(err)
	}
	res, err = copyReferenced(ctx, dir, late)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Dropped != 1 {
		t.Errorf("copy after an expunge: %+v, want 1 file copied, 1 dropped", res)
	}
	if p, err := Check(ctx, late, CheckOptions{}); err != nil || len(p) > 0 {
		t.Errorf("check of the copy after an expunge: %v %v", p, err)
	}

	// Damage in the live store: a referenced file gone.
	files, _ := filepath.Glob(filepath.Join(dir, blobsDir, "*", "*"))
	if len(files) != 1 {
		t.Fatalf("%d message files in the store, want 1: %v", len(files), files)
	}
	if err := os.Rename(files[0], files[0]+".moved"); err != nil {
		t.Fatal(err)
	}
	if _, err := Snapshot(ctx, dir, filepath.Join(t.TempDir(), "bad")); err == nil || !strings.Contains(err.Error(), "missing from the live store") {
		t.Errorf("snapshot of a store with a missing file: %v", err)
	}
	p, err := Check(ctx, dir, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, pr := range p {
		got[pr.What] = true
	}
	if !got["missing"] || !got["orphan"] || len(p) != 2 {
		t.Errorf("check with a file moved away: %v, want missing and orphan", p)
	}
	// A file of the wrong size.
	if err := os.Rename(files[0]+".moved", files[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, _ := Check(ctx, dir, CheckOptions{}); len(p) != 1 || p[0].What != "size" {
		t.Errorf("check with a shortened file: %v, want one size problem", p)
	}
}
