package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestNetError(t *testing.T) {
	bare := &net.DNSError{Err: "x", IsNotFound: true}
	tests := []struct {
		name                string
		err                 error
		notFound, temporary bool
		same                bool // the very error given
	}{
		{"bare not-found", bare, true, false, true},
		{"bare temporary", &net.DNSError{IsTemporary: true}, false, true, true},
		{"wrapped not-found", fmt.Errorf("lookup: %w", bare), true, false, false},
		{"wrapped timeout", fmt.Errorf("lookup: %w", &net.DNSError{IsTimeout: true}), false, true, false},
		{"foreign", errors.New("resolver exploded"), false, true, false},
		{"deadline", context.DeadlineExceeded, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NetError("n.test", tt.err)
			de, ok := got.(*net.DNSError)
			if !ok {
				t.Fatalf("%T, want a bare *net.DNSError", got)
			}
			if de.IsNotFound != tt.notFound || de.Temporary() != tt.temporary {
				t.Errorf("%+v: not found %v, temporary %v; want %v, %v", de, de.IsNotFound, de.Temporary(), tt.notFound, tt.temporary)
			}
			if (got == tt.err) != tt.same {
				t.Errorf("returned the given error: %v, want %v", got == tt.err, tt.same)
			}
		})
	}
	if NetError("n.test", nil) != nil {
		t.Error("nil error not nil")
	}
}
