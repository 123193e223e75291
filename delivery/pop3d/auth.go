package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/address"
	"github.com/moatmail/moat/gateway/throttle"
)

// authorizationCommand runs a command of the AUTHORIZATION state (RFC 1939
// §4); false ends the session.
func (sess *session) authorizationCommand(cmd command) bool {
	switch cmd.name {
	case cmdUSER:
		sess.cmdUser(cmd.arg)
	case cmdPASS:
		sess.cmdPass(cmd.arg)
	case cmdAUTH:
		return sess.cmdAuth(cmd.arg)
	case cmdSTLS:
		return sess.cmdSTLS(cmd.arg)
	case cmdAPOP:
		// APOP needs the password in clear on the server; the store
		// keeps only hashes. Not listed, so refused like any unknown.
		sess.fail("APOP not supported")
	default:
		sess.user = ""
		sess.fail("Command not valid before login")
	}
	return true
}

// Responses of the AUTHORIZATION state.
const (
	respTLSRequired = "-ERR [AUTH] TLS required: use STLS or POP3S first"
	respAuthFailed  = "-ERR [AUTH] Authentication failed"
	respTempFail    = "-ERR [SYS/TEMP] Temporary failure, try again later"
	respShutdown    = "-ERR [SYS/TEMP] Server shutting down"
)

// refusePlaintext answers a login attempted in clear where that is not
// allowed. RFC 3206 §4: [AUTH] covers "an attempt to authenticate in
// violation of policy".
func (sess *session) refusePlaintext() {
	sess.srv.loginFailed(throttle.ReasonPlaintext)
	sess.log.Info("pop3 login refused before TLS")
	sess.loginFailures++
	sess.reply(respTLSRequired)
}

// cmdUser: USER name (RFC 1939 §7). The answer is +OK for any name, so that
// it does not tell which mailboxes exist.
func (sess *session) cmdUser(arg string) {
	sess.user = ""
	if !sess.plaintextAllowed() {
		sess.refusePlaintext()
		return
	}
	name := strings.TrimSpace(arg)
	if name == "" {
		sess.fail("Syntax: USER name")
		return
	}
	sess.user = name
	sess.reply("+OK Send PASS")
}

// cmdPass: PASS string (RFC 1939 §7), after USER. The whole rest of the
// line is the password: RFC 1939 §7 lets it contain spaces.
func (sess *session) cmdPass(arg string) {
	user := sess.user
	sess.user = "" // RFC 1939 §7: after a failed PASS the client starts over with USER
	if !sess.plaintextAllowed() {
		sess.refusePlaintext()
		return
	}
	if user == "" {
		sess.fail("USER first")
		return
	}
	if arg == "" {
		sess.fail("Syntax: PASS password")
		return
	}
	sess.login(user, arg)
}

// cmdAuth: AUTH mechanism [initial-response] (RFC 5034 §4). Only PLAIN
// (RFC 4616). A bare AUTH lists the mechanisms, as many servers do for
// clients that predate CAPA. False ends the session.
func (sess *session) cmdAuth(arg string) bool {
	mech, initial := nextArg(arg)
	if !sess.plaintextAllowed() {
		sess.refusePlaintext()
		return true
	}
	if mech == "" {
		sess.reply("+OK Mechanisms follow\r\nPLAIN\r\n.")
		return true
	}
	if !strings.EqualFold(mech, "PLAIN") {
		sess.fail("Unsupported authentication mechanism")
		return true
	}
	if initial == "" {
		// RFC 5034 §4: an empty challenge is "+ " and the client's
		// response comes on a line of its own.
		sess.reply("+ ")
		if err := sess.flush(); err != nil {
			return false
		}
		line, err := sess.readLine()
		if err != nil {
			sess.readFailed(err)
			return false
		}
		initial = string(line)
	}
	if initial == "*" {
		// RFC 5034 §4: the client cancelled.
		sess.fail("Authentication cancelled")
		return true
	}
	if initial == "=" {
		initial = "" // RFC 5034 §4: an empty initial response
	}
	raw, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		sess.fail("Invalid base64 in AUTH response")
		return true
	}
	authz, authc, pass, ok := splitPlain(raw)
	if !ok {
		sess.fail("[AUTH] Malformed PLAIN response")
		return true
	}
	// RFC 4616 §2: an empty authorization identity means the
	// authentication identity; acting as someone else is not offered.
	if authz != "" && address.Normalize(authz) != address.Normalize(authc) {
		sess.srv.loginFailed(throttle.ReasonIdentity)
		sess.fail("[AUTH] Authorization identity not supported")
		return true
	}
	sess.login(authc, pass)
	return true
}

// splitPlain splits a PLAIN message: authzid NUL authcid NUL passwd
// (RFC 4616 §2), the last two not empty.
func splitPlain(b []byte) (authz, authc, pass string, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", "", false
	}
	j := bytes.IndexByte(b[i+1:], 0)
	if j < 0 {
		return "", "", "", false
	}
	j += i + 1
	authz, authc, pass = string(b[:i]), string(b[i+1:j]), string(b[j+1:])
	if authc == "" || pass == "" || strings.IndexByte(pass, 0) >= 0 {
		return "", "", "", false
	}
	return authz, authc, pass, true
}

// login checks a password and opens the maildrop; it writes the response.
func (sess *session) login(user, password string) {
	account := address.Normalize(user)
	var u mailstore.User
	ok, err := sess.srv.gate.Check(sess.remote, account, func() (bool, error) {
		ctx, cancel := opContext()
		defer cancel()
		var err error
		u, err = sess.srv.authenticate(ctx, account, password)
		if errors.Is(err, mailstore.ErrAuthFailed) {
			return false, nil
		}
		return err == nil, err
	})
	switch {
	case errors.Is(err, throttle.ErrClosing):
		sess.reply(respShutdown)
		return
	case err != nil:
		sess.srv.loginFailed(throttle.ReasonInternal)
		sess.log.Error("pop3 login: store failed", "user", clip(account), "err", err)
		sess.reply(respTempFail)
		return
	case !ok:
		sess.srv.loginFailed(throttle.ReasonCredentials)
		sess.log.Info("pop3 login failed", "user", clip(account))
		sess.loginFailures++
		sess.reply(respAuthFailed)
		return
	}
	log := sess.log.With("user", u.Address)
	if !sess.srv.lockMaildrop(u.ID) {
		// RFC 2449 §8.1.1: another session holds the maildrop.
		sess.srv.loginFailed(throttle.ReasonInUse)
		log.Info("pop3 login refused: maildrop in use")
		sess.reply("-ERR [IN-USE] Maildrop is in use by another POP3 session")
		return
	}
	ctx, cancel := opContext()
	drop, err := openMaildrop(ctx, sess.srv.store, u.ID)
	cancel()
	if err != nil {
		sess.srv.unlockMaildrop(u.ID)
		sess.srv.loginFailed(throttle.ReasonInternal)
		log.Error("pop3 login: cannot open maildrop", "err", err)
		if errors.Is(err, mailstore.ErrNoMailbox) {
			// RFC 3206 §4: SYS/PERM, the problem will not go away by
			// itself (the user has no INBOX).
			sess.reply("-ERR [SYS/PERM] Maildrop unavailable")
			return
		}
		sess.reply(respTempFail)
		return
	}
	sess.account, sess.drop, sess.state, sess.log = u, drop, stateTransaction, log
	log.Info("pop3 login", "tls", sess.isTLS, "messages", len(drop.msgs))
	count, size := drop.stat()
	w := sess.out()
	w.WriteString("+OK Maildrop locked and ready, ")
	sess.writeNumber(int64(count))
	w.WriteString(" messages (")
	sess.writeNumber(size)
	w.WriteString(" octets)\r\n")
}

// cmdSTLS: STLS (RFC 2595 §4), only before login and before TLS. False
// ends the session.
func (sess *session) cmdSTLS(arg string) bool {
	switch {
	case arg != "":
		sess.fail("Syntax: STLS takes no argument")
		return true
	case sess.isTLS:
		sess.fail("Already using TLS")
		return true
	case sess.srv.tlsConfig == nil:
		sess.fail("STLS not available")
		return true
	}
	sess.reply("+OK Begin TLS negotiation")
	if err := sess.flush(); err != nil {
		return false
	}
	// Anything the client sent after STLS in clear is dropped with the
	// old reader: it must not run as commands of the protected session
	// (the STARTTLS command injection of CVE-2011-0411).
	tc := tls.Server(sess.raw, sess.srv.tlsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	sess.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		sess.log.Info("pop3 STLS handshake failed", "err", err)
		return false
	}
	// RFC 2595 §4: the client must discard what it knew; so does the
	// server, about any USER given before.
	sess.conn, sess.isTLS, sess.user = tc, true, ""
	sess.r = bufio.NewReaderSize(tc, readBufSize)
	return true
}
