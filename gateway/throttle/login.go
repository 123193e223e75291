package throttle

import (
	"cmp"
	"fmt"
)

// LoginConfig is what the servers that check passwords (imapd, pop3d)
// share of their configuration: who may log in without TLS, and how many
// password checks run at once. Each server's Config embeds it, so that
// its keys sit in the server's own section ([imap], [pop3]). Zero fields
// take their defaults in Validate.
type LoginConfig struct {
	// AllowPlaintextLoopback lets clients on a loopback address log in
	// without TLS (local webmail and tools, benchmarks). Everyone else
	// must use implicit TLS (IMAPS, POP3S; RFC 8314 §3) or upgrade the
	// connection first (IMAP STARTTLS, RFC 9051 §6.2.3; POP3 STLS,
	// RFC 2595 §2.2). Default false.
	AllowPlaintextLoopback bool `toml:"allow_plaintext_loopback"`
	// AuthConcurrency bounds the password checks running at once (the
	// Gate's concurrency, default 4). Each argon2id verification takes
	// 19 MiB; without a bound, a flood of logins is a memory exhaustion
	// attack.
	AuthConcurrency int `toml:"auth_concurrency"`
}

// DefaultAuthConcurrency is the default of LoginConfig.AuthConcurrency.
const DefaultAuthConcurrency = 4

// Validate fills defaults and checks the configuration.
func (c *LoginConfig) Validate() error {
	c.AuthConcurrency = cmp.Or(c.AuthConcurrency, DefaultAuthConcurrency)
	if c.AuthConcurrency < 1 {
		return fmt.Errorf("auth_concurrency: %d is below 1", c.AuthConcurrency)
	}
	return nil
}

// Observer is told of refused logins, to count them (the binary wires it
// to Prometheus; no server imports it). Its method must not block.
type Observer interface {
	// LoginFailed is called once per refused login with one of the Reason
	// constants.
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
	// ReasonIdentity: SASL PLAIN with an authorization identity other
	// than the user's own.
	ReasonIdentity = "identity"
	// ReasonInUse: the password was right but another session holds the
	// mailbox exclusively (POP3's maildrop lock, RFC 2449 §8.1.1).
	ReasonInUse = "in-use"
	// ReasonInternal: the store failed.
	ReasonInternal = "internal"
)
