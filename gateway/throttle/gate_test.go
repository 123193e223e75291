package throttle

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestGateBoundsConcurrentChecks(t *testing.T) {
	th, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGate(th, 1, make(chan struct{}))
	ip := netip.MustParseAddr("192.0.2.1")
	inside, release := make(chan struct{}), make(chan struct{})
	go g.Check(ip, "a", func() (bool, error) {
		close(inside)
		<-release
		return true, nil
	})
	<-inside
	second := make(chan bool)
	go func() {
		ok, _ := g.Check(ip, "b", func() (bool, error) { return true, nil })
		second <- ok
	}()
	select {
	case <-second:
		t.Fatal("a second check ran while the only slot was taken")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if !<-second {
		t.Fatal("the second check failed once the slot was free")
	}
}

func TestGateCountsAndWaits(t *testing.T) {
	th, err := New(Config{FreeFailures: 1, BaseDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	g := NewGate(th, 2, done)
	var waited []time.Duration
	g.SetSleep(func(d time.Duration) bool { waited = append(waited, d); return true })
	ip := netip.MustParseAddr("192.0.2.7")
	wrong := func() (bool, error) { return false, nil }
	for i := 0; i < 3; i++ {
		if ok, err := g.Check(ip, "alice", wrong); ok || err != nil {
			t.Fatalf("wrong password: %v, %v", ok, err)
		}
	}
	if len(waited) != 2 || waited[0] != time.Second || waited[1] != 2*time.Second {
		t.Errorf("waits %v, want [1s 2s] after the one free failure", waited)
	}
	// A store fault is not a failure the throttle counts.
	fault := errors.New("store down")
	if _, err := g.Check(ip, "bob", func() (bool, error) { return false, fault }); !errors.Is(err, fault) {
		t.Errorf("fault: %v", err)
	}
	if d := th.Delay(netip.MustParseAddr("192.0.2.99"), "bob"); d != 0 {
		t.Errorf("bob is delayed %v after a store fault", d)
	}
	// Shutting down ends a wait.
	g.SetSleep(func(time.Duration) bool { return false })
	if _, err := g.Check(ip, "alice", wrong); !errors.Is(err, ErrClosing) {
		t.Errorf("check while closing: %v, want ErrClosing", err)
	}
}

// TestGateDefaultThrottle: a gate made without a throttle gets one of
// default settings, which delays after the third failure.
func TestGateDefaultThrottle(t *testing.T) {
	g := NewGate(nil, 1, make(chan struct{}))
	if g.Throttle() == nil || g.Throttle().cfg.FreeFailures != DefaultFreeFailures {
		t.Fatalf("throttle = %+v, want one of default settings", g.Throttle())
	}
	var slept []time.Duration
	g.SetSleep(func(d time.Duration) bool { slept = append(slept, d); return true })
	ip := netip.MustParseAddr("192.0.2.1")
	for range DefaultFreeFailures + 1 {
		if ok, err := g.Check(ip, "a", func() (bool, error) { return false, nil }); ok || err != nil {
			t.Fatalf("Check = %v, %v; want a refusal", ok, err)
		}
	}
	if len(slept) != 1 || slept[0] != DefaultBaseDelay {
		t.Errorf("waits = %v, want one of %v after %d failures", slept, DefaultBaseDelay, DefaultFreeFailures)
	}
}
