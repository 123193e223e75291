package imapd

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/throttle"
)

// Config configures the IMAP server. Zero fields take their defaults in
// Validate.
type Config struct {
	// LoginConfig holds allow_plaintext_loopback (without TLS, only
	// clients on a loopback address may log in; everyone else uses IMAPS
	// or STARTTLS first, RFC 9051 §6.2.3) and auth_concurrency (password
	// checks at once, default 4).
	throttle.LoginConfig
	// AppendLimit is the largest message APPEND accepts, in bytes
	// (default 50 MiB, at least 4096). It is advertised as APPENDLIMIT
	// (RFC 7889).
	AppendLimit int64 `toml:"append_limit"`
	// IdleTimeout ends an IDLE command that has lasted this long with a
	// BYE (default 30m). RFC 9051 §5.4 forbids an autologout timer below
	// 30 minutes; go-imap's own read deadline of 35 minutes is the
	// effective ceiling.
	IdleTimeout time.Duration `toml:"idle_timeout"`
}

// Defaults used by Validate for zero fields.
const (
	DefaultAppendLimit = 50 << 20
	DefaultIdleTimeout = 30 * time.Minute

	minAppendLimit = 4096
)

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	c.AppendLimit = cmp.Or(c.AppendLimit, DefaultAppendLimit)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	errs := []error{c.LoginConfig.Validate()}
	// APPENDLIMIT is a 32-bit number in go-imap (and in most clients).
	// Below 4096, a LITERAL- client could send a non-synchronizing
	// literal over the limit, which go-imap refuses without reading it.
	if c.AppendLimit < minAppendLimit || c.AppendLimit > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("append_limit: %d is outside %d..%d", c.AppendLimit, minAppendLimit, uint32(math.MaxUint32)))
	}
	if c.IdleTimeout < 30*time.Minute {
		errs = append(errs, fmt.Errorf("idle_timeout: %v is below the 30 minutes of RFC 9051 §5.4", c.IdleTimeout))
	}
	return errors.Join(errs...)
}

// Observer is told about refused logins with a throttle.Reason constant:
// credentials, plaintext, identity or internal. A login attempted in
// clear on a connection where LOGINDISABLED was announced is refused by
// go-imap before this package sees it, and is not reported.
type Observer = throttle.Observer

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
