package pop3d

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the POP3 server. Zero fields take their defaults in
// Validate.
type Config struct {
	// AllowPlaintextLoopback lets clients on a loopback address log in
	// without TLS (local tools, benchmarks). Everyone else must use POP3S
	// or STLS first (RFC 2595 §2.2, RFC 8314 §3). Default false.
	AllowPlaintextLoopback bool `toml:"allow_plaintext_loopback"`
	// IdleTimeout closes a connection that has sent no command for this
	// long (default 10m). RFC 1939 §3: an inactivity autologout timer
	// must be of at least 10 minutes. A connection closed this way
	// deletes nothing (RFC 1939 §6).
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// AuthConcurrency bounds the password checks running at once
	// (default 4). Each argon2id verification takes 19 MiB; without a
	// bound, a flood of PASS commands is a memory exhaustion attack.
	AuthConcurrency int `toml:"auth_concurrency"`
}

// Defaults used by Validate for zero fields.
const (
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultAuthConcurrency = 4

	minIdleTimeout = 10 * time.Minute
)

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AuthConcurrency == 0 {
		c.AuthConcurrency = DefaultAuthConcurrency
	}
	var errs []error
	if c.IdleTimeout < minIdleTimeout {
		errs = append(errs, fmt.Errorf("idle_timeout: %v is below the 10 minutes of RFC 1939 §3", c.IdleTimeout))
	}
	if c.AuthConcurrency < 1 {
		errs = append(errs, fmt.Errorf("auth_concurrency: %d is below 1", c.AuthConcurrency))
	}
	return errors.Join(errs...)
}

// Observer is told about events worth counting (the binary wires it to
// Prometheus; this package does not import it). Methods must not block.
type Observer interface {
	// LoginFailed is called once per refused USER, PASS or AUTH with one
	// of the Reason constants.
	LoginFailed(reason string)
}

// Reasons given to Observer.LoginFailed: a small fixed set, fit for a
// metric label.
const (
	// ReasonCredentials: unknown user or wrong password.
	ReasonCredentials = "credentials"
	// ReasonPlaintext: the client tried to log in without TLS where that
	// is not allowed.
	ReasonPlaintext = "plaintext"
	// ReasonIdentity: AUTH PLAIN with an authorization identity other
	// than the user's own.
	ReasonIdentity = "identity"
	// ReasonInUse: the password was right but another POP3 session holds
	// the maildrop (RFC 2449 §8.1.1).
	ReasonInUse = "in-use"
	// ReasonInternal: the store failed.
	ReasonInternal = "internal"
)
