package throttle

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(t *testing.T, cfg Config) (*Throttle, *fakeClock) {
	t.Helper()
	th, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	th.SetClock(clock.now)
	return th, clock
}

var (
	ipA = netip.MustParseAddr("192.0.2.1")
	ipB = netip.MustParseAddr("192.0.2.2")
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		check   func(Config) bool
	}{
		{"defaults", Config{}, "", func(c Config) bool {
			return c.FreeFailures == 3 && c.BaseDelay == time.Second && c.MaxDelay == 30*time.Second &&
				c.DecayAfter == 10*time.Minute && c.MaxEntries == 1<<16 && c.IPv6Prefix == 64
		}},
		{"kept", Config{FreeFailures: 5, BaseDelay: 2 * time.Second, MaxDelay: time.Minute}, "", func(c Config) bool {
			return c.FreeFailures == 5 && c.BaseDelay == 2*time.Second && c.MaxDelay == time.Minute
		}},
		{"negative free", Config{FreeFailures: -1}, "free_failures", nil},
		{"max below base", Config{BaseDelay: 10 * time.Second, MaxDelay: time.Second}, "max_delay", nil},
		{"negative decay", Config{DecayAfter: -time.Second}, "decay_after", nil},
		{"one entry", Config{MaxEntries: 1}, "max_entries", nil},
		{"prefix", Config{IPv6Prefix: 129}, "ipv6_prefix", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !tc.check(cfg) {
					t.Errorf("Validate gave %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate error = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}

func TestDelayGrowsAndCaps(t *testing.T) {
	th, _ := newTest(t, Config{})
	// want[i] is the delay after i failures.
	want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := th.Delay(ipA, "alice@example.com"); got != w {
			t.Errorf("after %d failures: Delay = %v, want %v", i, got, w)
		}
		th.Failure(ipA, "alice@example.com")
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		// failures are recorded for (failIP, failAccount), then Delay is
		// asked for (ip, account).
		failIP      netip.Addr
		failAccount string
		ip          netip.Addr
		account     string
		want        time.Duration
	}{
		{"same ip other account", ipA, "alice@example.com", ipA, "bob@example.com", 2 * time.Second},
		{"other ip same account", ipA, "alice@example.com", ipB, "alice@example.com", 2 * time.Second},
		{"account case-insensitive", ipA, "Alice@Example.COM", ipB, " alice@example.com ", 2 * time.Second},
		{"unrelated", ipA, "alice@example.com", ipB, "bob@example.com", 0},
		{"ipv6 same /64", netip.MustParseAddr("2001:db8:1:2::1"), "", netip.MustParseAddr("2001:db8:1:2:ffff::9"), "", 2 * time.Second},
		{"ipv6 other /64", netip.MustParseAddr("2001:db8:1:2::1"), "", netip.MustParseAddr("2001:db8:1:3::1"), "", 0},
		{"v4-mapped is v4", netip.MustParseAddr("::ffff:192.0.2.1"), "", ipA, "", 2 * time.Second},
		{"no ip, no account", netip.Addr{}, "", netip.Addr{}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, _ := newTest(t, Config{})
			for i := 0; i < 4; i++ {
				th.Failure(tc.failIP, tc.failAccount)
			}
			if got := th.Delay(tc.ip, tc.account); got != tc.want {
				t.Errorf("Delay = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quiet time.Duration
		want  time.Duration // after 8 failures: 30s before decay
	}{
		{"no quiet", 0, 30 * time.Second},
		{"short quiet", 9 * time.Minute, 30 * time.Second},
		{"one period halves 8 to 4", 10 * time.Minute, 2 * time.Second},
		{"two periods: 2 failures, free", 20 * time.Minute, 0},
		{"long ago", 48 * time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, clock := newTest(t, Config{})
			for i := 0; i < 8; i++ {
				th.Failure(ipA, "")
			}
			clock.advance(tc.quiet)
			if got := th.Delay(ipA, ""); got != tc.want {
				t.Errorf("Delay = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFailureAfterDecayCountsFromDecayedValue(t *testing.T) {
	th, clock := newTest(t, Config{})
	for i := 0; i < 8; i++ {
		th.Failure(ipA, "")
	}
	clock.advance(10 * time.Minute) // 8 → 4
	th.Failure(ipA, "")             // 5
	if got, want := th.Delay(ipA, ""), 4*time.Second; got != want {
		t.Errorf("Delay = %v, want %v", got, want)
	}
}

func TestSuccessForgetsAccountNotIP(t *testing.T) {
	th, _ := newTest(t, Config{})
	for i := 0; i < 5; i++ {
		th.Failure(ipA, "alice@example.com")
	}
	th.Success(ipA, "ALICE@example.com")
	for _, tc := range []struct {
		ip      netip.Addr
		account string
		want    time.Duration
	}{
		{ipB, "alice@example.com", 0},
		{ipA, "bob@example.com", 4 * time.Second},
	} {
		if got := th.Delay(tc.ip, tc.account); got != tc.want {
			t.Errorf("Delay(%v, %s) = %v, want %v", tc.ip, tc.account, got, tc.want)
		}
	}
}

func TestBoundedEvictsOldest(t *testing.T) {
	th, clock := newTest(t, Config{MaxEntries: 3})
	ips := make([]netip.Addr, 5)
	for i := range ips {
		ips[i] = netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", i+1))
		for j := 0; j < 4; j++ {
			th.Failure(ips[i], "")
		}
		clock.advance(time.Second)
	}
	if th.Len() != 3 {
		t.Fatalf("Len = %d, want 3", th.Len())
	}
	for i, ip := range ips {
		want := 2 * time.Second
		if i < 2 {
			want = 0 // evicted
		}
		if got := th.Delay(ip, ""); got != want {
			t.Errorf("Delay(%v) = %v, want %v", ip, got, want)
		}
	}
}

func TestLongAccountNamesAreBounded(t *testing.T) {
	th, _ := newTest(t, Config{})
	long := strings.Repeat("a", 50_000)
	for i := 0; i < 4; i++ {
		th.Failure(netip.Addr{}, long)
	}
	for k := range th.entries {
		if len(k) > maxKeyLen+len("acct:") {
			t.Errorf("key of %d bytes kept", len(k))
		}
	}
	if got := th.Delay(netip.Addr{}, long); got != 2*time.Second {
		t.Errorf("Delay = %v, want 2s", got)
	}
}
