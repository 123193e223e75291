// Package imapd serves the moat mailbox store over IMAP (RFC 3501 and
// RFC 9051), on top of go-imap v2's imapserver.
//
// Authentication: LOGIN and AUTHENTICATE PLAIN, against Store.Authenticate,
// only over TLS (IMAPS or after STARTTLS) unless the client is on a loopback
// address and Config.AllowPlaintextLoopback is set. Every attempt first
// waits what package throttle says for the client's address and the
// account, and the argon2id checks running at once are bounded.
//
// Isolation: a session sees only its own user's mailboxes, looked up by
// name for that user; no store identifier ever comes from the client, so
// another user's mailbox names simply do not exist for it. The one
// exception is an admin account's shared namespace, "Shared/<address>/",
// holding each other user's Quarantine and, as a release target only,
// their INBOX; every name goes through one resolver that says whose
// mailbox it is and what may be done with it (resolve.go). Mail never
// moves between accounts.
//
// Sequence numbers: a selected mailbox is held as a per-session snapshot
// (UIDs in order and their flags) from which sequence numbers are derived.
// Changes made by other sessions or by delivery reach the snapshot on the
// next poll (after every command) or at once during IDLE, as a diff between
// the snapshot and a fresh listing from the store, taken only when
// Store.Watch said the mailbox changed. EXPUNGE is held back while FETCH,
// STORE or SEARCH answer (RFC 9051 §7.5.1); see snapshot.go.
//
// Throughput: FETCH streams BODY[] from the message file into the literal
// through shared buffers, reads a file once when several items need it,
// and batches the socket writes of a command (cork.go).
package imapd
