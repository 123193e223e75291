package resolver

import (
	"context"
	"errors"
	"net"
)

// The causes a lookup error wraps, for errors.Is. Every error returned by
// DNS is a *net.DNSError whose IsNotFound, IsTemporary and IsTimeout fields
// are set as net.Resolver sets them, so libraries that inspect
// *net.DNSError or net.Error (go-msgauth, blitiri.com.ar/go/spf) classify
// moat's errors correctly; its UnwrapErr holds one of these causes or the
// network error.
var (
	// ErrNXDomain: the name does not exist (RCODE 3, RFC 1035 §4.1.1;
	// RFC 8020: nothing exists below it either). A definitive answer.
	ErrNXDomain = errors.New("no such domain")
	// ErrNoData: the name exists but has no record of the asked type
	// (RFC 2308 §2.2). A definitive answer.
	ErrNoData = errors.New("no record of that type")
	// ErrInvalidName: the name cannot be asked (not a domain name, too
	// long). Like net.Resolver, reported as not found: nothing by that
	// name can exist.
	ErrInvalidName = errors.New("invalid domain name")
	// ErrServFail: the upstream could not answer (RCODE 2). Temporary.
	ErrServFail = errors.New("server failure")
	// ErrRcode: another error RCODE (REFUSED, NOTIMP, FORMERR...), most
	// likely an upstream misconfiguration. Temporary: the sender is not
	// at fault.
	ErrRcode = errors.New("unexpected response code")
	// ErrBadResponse: the answer could not be parsed or does not answer
	// the question. Temporary.
	ErrBadResponse = errors.New("malformed response")
)

// IsNotFound reports whether err is a definitive "no such name" or "no such
// record": NXDOMAIN, NODATA or a name that cannot exist. Checks may treat
// it as a fact about the sender.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// IsTemporary reports whether err is a transient failure: a timeout,
// SERVFAIL, an unreachable upstream, a cancelled context. A check that sees
// one must not turn it into a permanent verdict.
//
// An error that is neither IsNotFound nor IsTemporary comes from something
// other than this package; callers should treat it as temporary too.
func IsTemporary(err error) bool {
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTemporary || de.IsTimeout
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// notFound builds the error for a definitive negative answer.
func notFound(name, server string, cause error) error {
	return &net.DNSError{
		Err:        cause.Error(),
		Name:       name,
		Server:     server,
		IsNotFound: true,
		UnwrapErr:  cause,
	}
}

// temporary builds the error for a failure that may pass.
func temporary(name, server string, cause error) error {
	var ne net.Error
	timeout := errors.Is(cause, context.DeadlineExceeded) ||
		(errors.As(cause, &ne) && ne.Timeout())
	return &net.DNSError{
		Err:         cause.Error(),
		Name:        name,
		Server:      server,
		IsTimeout:   timeout,
		IsTemporary: true,
		UnwrapErr:   cause,
	}
}

// NetError returns err, an error of a lookup of name, as a bare
// *net.DNSError, or nil for nil. It is for libraries that classify lookup
// errors with a type assertion instead of errors.As (blitiri.com.ar/go/spf,
// go-msgauth's dkim and dmarc): to them a wrapped *net.DNSError, or an
// error of another type, is a permanent fault, and a temporary fault
// must never become one. A wrapped *net.DNSError is unwrapped (a copy);
// any other error, which says nothing of the name, is made temporary.
func NetError(name string, err error) error {
	if err == nil {
		return nil
	}
	if de, ok := err.(*net.DNSError); ok {
		return de
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		c := *de
		return &c
	}
	return &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsTimeout:   errors.Is(err, context.DeadlineExceeded),
		IsTemporary: true,
		UnwrapErr:   err,
	}
}
