// Package pop3d serves the INBOX of the moat mailbox store over POP3
// (RFC 1939), with the extensions of RFC 2449 (CAPA, response codes,
// PIPELINING), STLS (RFC 2595), SASL PLAIN (RFC 5034, RFC 4616) and the
// response codes of RFC 3206. APOP is not offered: it needs the password
// in clear on the server, and the store keeps only argon2id hashes.
//
// Authentication: USER/PASS and AUTH PLAIN, against Store.Authenticate,
// only over TLS (POP3S, or after STLS) unless the client is on a loopback
// address and Config.AllowPlaintextLoopback is set; elsewhere CAPA does not
// list USER nor SASL and both are answered -ERR [AUTH]. Every attempt first
// waits what package throttle says for the client's address and the
// account, and the argon2id checks running at once are bounded.
//
// Maildrop: the user's INBOX, locked per user across all POP3 sessions of
// the server (a second session is answered -ERR [IN-USE], RFC 2449 §8.1.1).
// At login the session takes a snapshot of the message list; message
// numbers 1..n stay fixed for the session (RFC 1939 §4). DELE only marks;
// the marked messages, and only they, are removed in the UPDATE state after
// QUIT, in one store transaction. A connection that ends any other way
// (EOF, idle timeout, error, server shutdown) removes nothing (RFC 1939
// §6). IMAP sees the same messages: UIDL is "UIDVALIDITY.UID" of the INBOX
// message, stable across sessions and protocols.
//
// Throughput: RETR and TOP stream the stored message through a pooled
// write buffer, converting bare LF to CRLF and dot-stuffing on the fly
// without per-line allocation (dotwriter.go); responses are flushed once
// no further complete command is waiting, so pipelined commands share
// writes. An idle connection holds a 1 KiB read buffer and its snapshot;
// write and copy buffers are pooled.
package pop3d
