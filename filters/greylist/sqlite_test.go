package greylist

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/state/redistest"
)

// eachStore runs test against every Store implementation: the same
// behaviour is the contract. Each call of open gives an empty store.
func eachStore(t *testing.T, test func(t *testing.T, open func(testing.TB) Store)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, func(t testing.TB) Store { return openStore(t, filepath.Join(t.TempDir(), "g.db")) })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		cfg := state.DefaultConfig()
		cfg.Backend, cfg.Address = state.BackendRedis, srv.Addr()
		rdb, err := state.NewClient(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		n := 0
		test(t, func(testing.TB) Store {
			n++
			return NewRedisStore(rdb, fmt.Sprintf("test%d:", n))
		})
	})
}

func TestNetRange(t *testing.T) {
	ff := bytes.Repeat([]byte{0xff}, 16)
	v4 := func(a, b, c, d byte) []byte {
		return []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d}
	}
	tests := []struct {
		p      string
		lo, hi []byte
	}{
		{"", make([]byte, 16), ff},
		{"192.0.2.0/24", v4(192, 0, 2, 0), v4(192, 0, 2, 255)},
		{"192.0.2.77/32", v4(192, 0, 2, 77), v4(192, 0, 2, 77)},
		{"10.0.0.0/8", v4(10, 0, 0, 0), v4(10, 255, 255, 255)},
		{"2001:db8::/32",
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"2001:db8:0:1::/63",
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		var p netip.Prefix
		if tt.p != "" {
			p = netip.MustParsePrefix(tt.p)
		}
		lo, hi := netRange(p)
		if !bytes.Equal(lo, tt.lo) || !bytes.Equal(hi, tt.hi) {
			t.Errorf("netRange(%s) = %x..%x, want %x..%x", tt.p, lo, hi, tt.lo, tt.hi)
		}
	}
}

// fill stores a triplet that has passed for each network, and a client
// record for each.
func fill(t *testing.T, st Store, now time.Time, nets ...string) {
	t.Helper()
	ctx := context.Background()
	for i, n := range nets {
		p := netip.MustParsePrefix(n)
		tr := Triplet{Network: p, Sender: "s@example.net", Rcpt: fmt.Sprintf("r%d@example.com", i)}
		if err := Pass(ctx, st, tr, now, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := Allow(ctx, st, p, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListAndDelete(t *testing.T) { eachStore(t, testListAndDelete) }

func testListAndDelete(t *testing.T, open func(testing.TB) Store) {
	ctx := context.Background()
	nets := []string{"192.0.2.0/24", "192.0.3.0/24", "198.51.100.0/24", "2001:db8:1:2::/64", "2001:db8:9::/64"}
	tests := []struct {
		within string
		want   []string
	}{
		{"", nets},
		{"192.0.0.0/16", nets[:2]},
		{"192.0.2.0/24", nets[:1]},
		{"192.0.2.7/32", nil},
		{"2001:db8::/32", nets[3:]},
		{"2001:db8:1::/48", nets[3:4]},
		{"203.0.113.0/24", nil},
	}
	for _, tt := range tests {
		t.Run("within "+tt.within, func(t *testing.T) {
			st := open(t)
			now := time.Unix(1_700_000_000, 0)
			fill(t, st, now, nets...)
			var within netip.Prefix
			if tt.within != "" {
				within = netip.MustParsePrefix(tt.within)
			}
			es, err := st.Triplets(ctx, within, 0)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := st.Clients(ctx, within, 0)
			if err != nil {
				t.Fatal(err)
			}
			var gotT, gotC []string
			for _, e := range es {
				gotT = append(gotT, e.Network.String())
				if !e.Passed() || !e.PassedAt.Equal(now) || !e.Expires.Equal(now.Add(time.Hour)) {
					t.Errorf("listed entry %+v, want passed at %v expiring an hour later", e, now)
				}
			}
			for _, c := range cs {
				gotC = append(gotC, c.Network.String())
				if !c.Allowed || !c.Expires.IsZero() {
					t.Errorf("listed client %+v, want allowed without end", c)
				}
			}
			want := strings.Join(sortedNets(tt.want), " ")
			if strings.Join(gotT, " ") != want || strings.Join(gotC, " ") != want {
				t.Errorf("Triplets %v, Clients %v, want %s", gotT, gotC, want)
			}
			n, err := st.Delete(ctx, within)
			if err != nil {
				t.Fatal(err)
			}
			if n != 2*len(tt.want) {
				t.Errorf("Delete removed %d, want %d", n, 2*len(tt.want))
			}
			es, _ = st.Triplets(ctx, netip.Prefix{}, 0)
			cs, _ = st.Clients(ctx, netip.Prefix{}, 0)
			if len(es) != len(nets)-len(tt.want) || len(cs) != len(nets)-len(tt.want) {
				t.Errorf("after Delete: %d triplets, %d clients, want %d each", len(es), len(cs), len(nets)-len(tt.want))
			}
		})
	}
}

// sortedNets orders networks as the store does: by their 16-byte form.
func sortedNets(nets []string) []string {
	out := append([]string(nil), nets...)
	key := func(s string) []byte { b, _ := netKey(netip.MustParsePrefix(s)); return b }
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if bytes.Compare(key(out[j]), key(out[i])) < 0 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestListLimit(t *testing.T) { eachStore(t, testListLimit) }

func testListLimit(t *testing.T, open func(testing.TB) Store) {
	st := open(t)
	fill(t, st, time.Unix(1_700_000_000, 0), "192.0.2.0/24", "192.0.3.0/24", "192.0.4.0/24")
	es, err := st.Triplets(context.Background(), netip.Prefix{}, 2)
	if err != nil || len(es) != 2 || es[0].Network.String() != "192.0.2.0/24" {
		t.Errorf("Triplets limit 2 = %v, %v", es, err)
	}
	cs, err := st.Clients(context.Background(), netip.Prefix{}, 1)
	if err != nil || len(cs) != 1 {
		t.Errorf("Clients limit 1 = %v, %v", cs, err)
	}
}

func TestDeleteTriplet(t *testing.T) { eachStore(t, testDeleteTriplet) }

func testDeleteTriplet(t *testing.T, open func(testing.TB) Store) {
	ctx := context.Background()
	st := open(t)
	fill(t, st, time.Unix(1_700_000_000, 0), "192.0.2.0/24")
	tr := Triplet{Network: netip.MustParsePrefix("192.0.2.0/24"), Sender: "s@example.net", Rcpt: "r0@example.com"}
	for i, want := range []bool{true, false} {
		ok, err := st.DeleteTriplet(ctx, tr)
		if err != nil || ok != want {
			t.Errorf("DeleteTriplet #%d = %v, %v, want %v", i, ok, err, want)
		}
	}
	if cs, _ := st.Clients(ctx, netip.Prefix{}, 0); len(cs) != 1 {
		t.Errorf("DeleteTriplet removed the client record too")
	}
}

func TestExpire(t *testing.T) { eachStore(t, testExpire) }

func testExpire(t *testing.T, open func(testing.TB) Store) {
	ctx := context.Background()
	st := open(t)
	now := time.Unix(1_700_000_000, 0)
	// More than a batch of triplets expiring, some that do not, and
	// client records: allowed forever, allowed until a time, counting.
	const expiring = 2*expireBatch + 17
	var entries []Entry
	for i := range expiring + 5 {
		exp := now.Add(-time.Second)
		if i >= expiring {
			exp = now.Add(time.Second)
		}
		tr := Triplet{Network: netip.MustParsePrefix("192.0.2.0/24"), Sender: "s@example.net", Rcpt: fmt.Sprintf("r%d@example.com", i)}
		entries = append(entries, Entry{Triplet: tr, FirstSeen: time.Unix(1, 0), LastSeen: time.Unix(1, 0), Attempts: 1, Expires: exp})
	}
	storeEntries(t, st, entries)
	for _, c := range []struct {
		net     string
		expires time.Time
	}{{"198.51.100.0/24", time.Time{}}, {"198.51.101.0/24", now}, {"198.51.102.0/24", now.Add(time.Second)}} {
		p := netip.MustParsePrefix(c.net)
		if _, err := st.UpdateClient(ctx, p, func(Client, bool) (Client, bool) {
			return Client{Network: p, Passes: 3, Expires: c.expires}, true
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.Expire(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != expiring+1 {
		t.Errorf("Expire removed %d, want %d", n, expiring+1)
	}
	es, _ := st.Triplets(ctx, netip.Prefix{}, 0)
	cs, _ := st.Clients(ctx, netip.Prefix{}, 0)
	if len(es) != 5 || len(cs) != 2 {
		t.Errorf("left %d triplets and %d clients, want 5 and 2", len(es), len(cs))
	}
	for _, c := range cs {
		if c.Network.String() == "198.51.101.0/24" {
			t.Errorf("client expiring at now kept: %+v", c)
		}
	}
}

func TestUpdateWithoutWrite(t *testing.T) { eachStore(t, testUpdateWithoutWrite) }

func testUpdateWithoutWrite(t *testing.T, open func(testing.TB) Store) {
	ctx := context.Background()
	st := open(t)
	tr := Triplet{Network: netip.MustParsePrefix("192.0.2.0/24"), Sender: "a@b", Rcpt: "c@d"}
	calls := 0
	e, err := st.UpdateTriplet(ctx, tr, func(e Entry, found bool) (Entry, bool) {
		calls++
		if found {
			t.Error("found an entry in an empty store")
		}
		e.Attempts = 7
		return e, false
	})
	if err != nil || e.Attempts != 7 || calls != 1 {
		t.Errorf("UpdateTriplet without write = %+v, %v after %d calls", e, err, calls)
	}
	if es, _ := st.Triplets(ctx, netip.Prefix{}, 0); len(es) != 0 {
		t.Errorf("a function that asked for no write stored %d entries", len(es))
	}
	// Asking for a write stores what fn returned. (SQLiteStore runs fn
	// again inside its transaction; RedisStore only when another writer
	// came between its read and its compare-and-set.)
	calls = 0
	if _, err := st.UpdateTriplet(ctx, tr, func(e Entry, found bool) (Entry, bool) {
		calls++
		e.Attempts = 3
		e.Expires = time.Unix(1_700_000_000, 0)
		return e, true
	}); err != nil || calls < 1 {
		t.Fatalf("UpdateTriplet with write: %v after %d calls", err, calls)
	}
	if es, _ := st.Triplets(ctx, netip.Prefix{}, 0); len(es) != 1 || es[0].Attempts != 3 || es[0].Triplet != tr {
		t.Errorf("after a write: %+v, want the triplet with 3 attempts", es)
	}
}

// TestConcurrentUpdates: updates of one record from many goroutines
// (nodes) lose none: each increments the attempts once.
func TestConcurrentUpdates(t *testing.T) { eachStore(t, testConcurrentUpdates) }

func testConcurrentUpdates(t *testing.T, open func(testing.TB) Store) {
	ctx := context.Background()
	st := open(t)
	tr := Triplet{Network: netip.MustParsePrefix("192.0.2.0/24"), Sender: "a@b", Rcpt: "c@d"}
	const n = 40
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := st.UpdateTriplet(ctx, tr, func(e Entry, found bool) (Entry, bool) {
				e.Triplet = tr
				e.Attempts++
				e.Expires = time.Unix(1_700_000_000, 0)
				return e, true
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if es, _ := st.Triplets(ctx, netip.Prefix{}, 0); len(es) != 1 || es[0].Attempts != n {
		t.Errorf("after %d concurrent increments: %+v", n, es)
	}
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "greylist.db")
	st, err := Open(DefaultConfig(), filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Path() != path {
		t.Errorf("Path %q, want %q", st.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	var mode string
	if err := st.wdb.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q (%v), want wal", mode, err)
	}
	// A database of a newer schema is refused.
	if _, err := st.wdb.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := OpenSQLite(path); err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Errorf("opening a newer schema: %v", err)
	}
	if _, err := OpenSQLite(filepath.Join(dir, "missing", "g.db")); err == nil {
		t.Error("OpenSQLite in a missing folder succeeded")
	}
}

func TestDatabasePath(t *testing.T) {
	tests := []struct{ path, want string }{
		{"", "/var/lib/moat/greylist.db"},
		{"grey/state.db", "/var/lib/moat/grey/state.db"},
		{"/srv/greylist.db", "/srv/greylist.db"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.Path = tt.path
		if got := DatabasePath(cfg, "/var/lib/moat"); got != tt.want {
			t.Errorf("DatabasePath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// storeEntries stores entries: in one transaction into a SQLiteStore (a
// transaction per entry would take seconds), by UpdateTriplet otherwise.
func storeEntries(t *testing.T, st Store, entries []Entry) {
	t.Helper()
	if sq, ok := st.(*SQLiteStore); ok {
		tx, err := sq.wdb.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		for _, e := range entries {
			key, bits := netKey(e.Network)
			if _, err := tx.Exec(`INSERT INTO triplets (net, bits, sender, rcpt, `+tripletColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				key, bits, e.Sender, e.Rcpt, unixSeconds(e.FirstSeen), unixSeconds(e.LastSeen), e.Attempts,
				unixSeconds(e.PassedAt), unixSeconds(e.Expires)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, e := range entries {
		if _, err := st.UpdateTriplet(context.Background(), e.Triplet, func(Entry, bool) (Entry, bool) { return e, true }); err != nil {
			t.Fatal(err)
		}
	}
}
