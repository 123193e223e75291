// Package delivery holds no code of its own: it names the folder of what
// happens to mail once the gateway has accepted it. Its sub-packages are
//
//   - mailstore: the mailbox store (users, mailboxes, messages, allow
//     lists) and local delivery into it, with the durability contract
//     that a 250 after DATA relies on;
//   - imapd: the IMAP server over the store;
//   - pop3d: the POP3 server over the store.
//
// The outbound queue and the relay client will come as delivery/queue and
// delivery/relay.
package delivery
