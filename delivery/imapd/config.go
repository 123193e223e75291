package imapd

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// Config configures the IMAP server. Zero fields take their defaults in
// Validate.
type Config struct {
	// AllowPlaintextLoopback lets clients on a loopback address log in
	// without TLS (local webmail, benchmarks). Everyone else must use
	// IMAPS or STARTTLS first (RFC 9051 §6.2.3). Default false.
	AllowPlaintextLoopback bool `toml:"allow_plaintext_loopback"`
	// AppendLimit is the largest message APPEND accepts, in bytes
	// (default 50 MiB, at least 4096). It is advertised as APPENDLIMIT
	// (RFC 7889).
	AppendLimit int64 `toml:"append_limit"`
	// IdleTimeout ends an IDLE command that has lasted this long with a
	// BYE (default 30m). RFC 9051 §5.4 forbids an autologout timer below
	// 30 minutes; go-imap's own read deadline of 35 minutes is the
	// effective ceiling.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// AuthConcurrency bounds the password checks running at once
	// (default 4). Each argon2id verification takes 19 MiB; without a
	// bound, a flood of LOGIN commands is a memory exhaustion attack.
	AuthConcurrency int `toml:"auth_concurrency"`
}

// Defaults used by Validate for zero fields.
const (
	DefaultAppendLimit     = 50 << 20
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAuthConcurrency = 4

	minAppendLimit = 4096
)

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.AppendLimit == 0 {
		c.AppendLimit = DefaultAppendLimit
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AuthConcurrency == 0 {
		c.AuthConcurrency = DefaultAuthConcurrency
	}
	var errs []error
	// APPENDLIMIT is a 32-bit number in go-imap (and in most clients).
	// Below 4096, a LITERAL- client could send a non-synchronizing
	// literal over the limit, which go-imap refuses without reading it.
	if c.AppendLimit < minAppendLimit || c.AppendLimit > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("append_limit: %d is outside %d..%d", c.AppendLimit, minAppendLimit, uint32(math.MaxUint32)))
	}
	if c.IdleTimeout < 30*time.Minute {
		errs = append(errs, fmt.Errorf("idle_timeout: %v is below the 30 minutes of RFC 9051 §5.4", c.IdleTimeout))
	}
	if c.AuthConcurrency < 1 {
		errs = append(errs, fmt.Errorf("auth_concurrency: %d is below 1", c.AuthConcurrency))
	}
	return errors.Join(errs...)
}

// Observer is told about events worth counting (the binary wires it to
// Prometheus; this package does not import it). Methods must not block.
type Observer interface {
	// LoginFailed is called once per refused LOGIN or AUTHENTICATE with
	// one of the Reason constants. A login attempted in clear on a
	// connection where LOGINDISABLED was announced is refused by go-imap
	// before this package sees it, and is not reported.
	LoginFailed(reason string)
}

// Reasons given to Observer.LoginFailed: a small fixed set, fit for a
// metric label.
const (
	// ReasonCredentials: unknown user or wrong password.
	ReasonCredentials = "credentials"
	// ReasonPlaintext: the client tried to log in without TLS where the
	// per-connection check caught it.
	ReasonPlaintext = "plaintext"
	// ReasonIdentity: AUTHENTICATE PLAIN with an authorization identity
	// other than the user's own.
	ReasonIdentity = "identity"
	// ReasonInternal: the store failed.
	ReasonInternal = "internal"
)

// Reviewer follows what users do with their mail, so that the classifier
// learns from it and the quarantine keeps its records right (releasing a
// message by moving it out of Quarantine, reporting spam by moving it to
// Junk). Calls are made after the store change is committed; a Reviewer
// must not block for long (queue slow work). Nil is allowed.
//
// user is always the owner of the mailboxes: when an admin releases or
// deletes mail in another user's shared Quarantine, the call is made as if
// that user had done it.
type Reviewer interface {
	// Moved says that msgs (as they were in from) were copied or, with
	// move, moved to the mailbox to of the same user.
	Moved(user mailstore.User, from, to mailstore.Mailbox, msgs []mailstore.Message, move bool)
	// Expunging says that msgs of mailbox mb are about to be expunged;
	// their content is still readable. It is called only for the
	// Quarantine folder.
	Expunging(user mailstore.User, mb mailstore.Mailbox, msgs []mailstore.Message)
}
