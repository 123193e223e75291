package pop3d

import (
	"runtime"
	"strings"
	"testing"
)

// TestIdleConnectionMemory: an idle connection costs little. Heap and
// stacks are measured around opening idle connections that have used TLS
// (STLS), read a CAPA list, logged in and retrieved a message, so that
// every buffer the server takes has been taken once. Client and server run
// in this process, so the figure counts both ends: the server's share is
// below it.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many connections")
	}
	const n = 100
	const limit = 200 << 10
	e := newEnv(t, Config{})
	e.deliver(t, e.alice, message("one", strings.Repeat("a line of the body\r\n", 500)))
	warm := e.login(t, aliceAddr, alicePass)
	warm.cmd("RETR 1")
	warm.body()
	warm.cmd("QUIT")

	before := memInUse()
	clients := make([]*client, n)
	for i := range clients {
		cl := e.dialSTLS(t)
		cl.multi("CAPA")
		clients[i] = cl
	}
	// One of them logged in, with a retrieved message behind it.
	clients[0].mustLogin(aliceAddr, alicePass)
	clients[0].cmd("RETR 1")
	clients[0].body()
	after := memInUse()
	per := int64(after-before) / n
	t.Logf("%d idle TLS connections: %d bytes each, client and server ends together", n, per)
	if per > limit {
		t.Errorf("an idle TLS connection costs %d bytes (both ends), want at most %d", per, limit)
	}
	for _, cl := range clients {
		cl.c.Close()
	}
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}
