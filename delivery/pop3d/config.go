package pop3d

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/moatmail/moat/gateway/throttle"
)

// Config configures the POP3 server. Zero fields take their defaults in
// Validate.
type Config struct {
	// LoginConfig holds allow_plaintext_loopback (without TLS, only
	// clients on a loopback address may log in; everyone else uses POP3S
	// or STLS first, RFC 2595 §2.2, RFC 8314 §3) and auth_concurrency
	// (password checks at once, default 4).
	throttle.LoginConfig
	// IdleTimeout closes a connection that has sent no command for this
	// long (default 10m). RFC 1939 §3: an inactivity autologout timer
	// must be of at least 10 minutes. A connection closed this way
	// deletes nothing (RFC 1939 §6).
	IdleTimeout time.Duration `toml:"idle_timeout"`
}

// Defaults used by Validate for zero fields.
const (
	DefaultIdleTimeout = 10 * time.Minute

	minIdleTimeout = 10 * time.Minute
)

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	errs := []error{c.LoginConfig.Validate()}
	if c.IdleTimeout < minIdleTimeout {
		errs = append(errs, fmt.Errorf("idle_timeout: %v is below the 10 minutes of RFC 1939 §3", c.IdleTimeout))
	}
	return errors.Join(errs...)
}

// Observer is told about refused USER, PASS and AUTH commands with a
// throttle.Reason constant: credentials, plaintext, identity, in-use (the
// password was right but another POP3 session holds the maildrop) or
// internal.
type Observer = throttle.Observer
