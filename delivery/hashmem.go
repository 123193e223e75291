package delivery

import (
	"runtime/debug"
	"sync"
	"time"
)

// An argon2id check allocates 19 MiB, which the Go runtime keeps from the
// operating system for minutes after the check. A burst of logins would
// leave a server that holds a few kilobytes per idle connection looking
// (and being, for the OS) tens of megabytes larger. releaseHashMemory
// returns that memory shortly after the last check of a burst: one forced
// collection per burst, never one per login.
var hashMem struct {
	mu    sync.Mutex
	timer *time.Timer
}

const hashMemQuiet = 500 * time.Millisecond

func releaseHashMemory() {
	hashMem.mu.Lock()
	defer hashMem.mu.Unlock()
	if hashMem.timer == nil {
		hashMem.timer = time.AfterFunc(hashMemQuiet, debug.FreeOSMemory)
		return
	}
	hashMem.timer.Reset(hashMemQuiet)
}
