package mailstore

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// An argon2id check allocates 19 MiB, with two consequences that
// releaseHashMemory undoes.
//
// The allocation starts a collection while the check runs, which finds
// the 19 MiB in use and sets the next heap goal at twice that. The
// commands that follow a login (an IMAP FETCH, POP3 RETRs, with the 10 KB
// copies of messages read from the index) would then grow the heap into
// pages taken anew from the operating system, a page fault each, instead
// of reusing the check's. So each check ends with a collection (about
// 2 ms with moat's small heap, against some 90 ms for the check): the
// goal falls back, and the check's pages are reused.
//
// The Go runtime keeps the memory from the operating system for minutes.
// A burst of logins would leave a server that holds a few kilobytes per
// idle connection looking (and being, for the OS) tens of megabytes
// larger. So the memory is returned shortly after the last check of a
// burst: one debug.FreeOSMemory per burst, never one per login.
var hashMem struct {
	mu    sync.Mutex
	timer *time.Timer
}

const hashMemQuiet = 500 * time.Millisecond

func releaseHashMemory() {
	runtime.GC()
	hashMem.mu.Lock()
	defer hashMem.mu.Unlock()
	if hashMem.timer == nil {
		hashMem.timer = time.AfterFunc(hashMemQuiet, debug.FreeOSMemory)
		return
	}
	hashMem.timer.Reset(hashMemQuiet)
}
