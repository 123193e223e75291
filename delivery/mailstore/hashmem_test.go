package mailstore

import (
	"context"
	"runtime"
	"testing"
)

// TestLoginLeavesSmallHeapGoal: after a password check the heap goal is
// back near the (small) live heap of this test, not at twice the check's
// 19 MiB, which would make the commands after a login grow the heap into
// fresh pages.
func TestLoginLeavesSmallHeapGoal(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	if _, err := s.AddUser(ctx, "a@example.com", "pw", RoleUser); err != nil {
		t.Fatal(err)
	}
	for _, pass := range []string{"pw", "wrong"} {
		s.Authenticate(ctx, "a@example.com", pass)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.NextGC >= argonMemory<<10 {
			t.Errorf("after a check with password %q: heap goal %d MiB, want less than the check's %d MiB",
				pass, ms.NextGC>>20, argonMemory>>10)
		}
	}
}
