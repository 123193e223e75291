// Package dnsxl asks DNS lists (DNSBLs, DNSWLs, RHSBLs and URI lists: the
// "DNSxLs" of RFC 5782) the way moat's list filters need: the dnsbl
// filter asks about the client address, the uribl filter about domain
// names. It holds what the two share:
//
//   - [ReverseIP], the query name of an address (RFC 5782 §2.1, §2.4);
//   - [Codes], return-code patterns in Postfix postscreen's syntax
//     ("127.0.0.[2..11]"), and [Interpret], which tells a listing from a
//     refusal ("you are blocked", 127.255.255.254) and from a malformed
//     answer (an address outside 127.0.0.0/8);
//   - [Zone], a list's zone asked through moat's resolver, probed at
//     most every few minutes on its RFC 5782 §5 test entries so that a
//     list that answers every query is ignored instead of blocking all
//     mail, with an [Observer] for metrics;
//   - [ListConfig] and [Compile], the configuration of a list (zone,
//     weight, codes, mask, symbol), as both filters read it.
//
// A DNS fault is never a listing: a lookup that fails is an [Answer] of
// status Failed, which the filters count for nothing.
package dnsxl
