package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/address"
	"github.com/moatmail/moat/gateway/throttle"
)

// SubmissionConfig configures message submission (RFC 6409) on the
// listeners that ListenOptions.Submission marks (587 with STARTTLS, 465
// with implicit TLS, RFC 8314), under [smtp.submission].
type SubmissionConfig struct {
	// LoginConfig holds allow_plaintext_loopback (AUTH without TLS only
	// for clients on a loopback address; everyone else must STARTTLS
	// first, RFC 4954 §4 and RFC 8314 §3) and auth_concurrency (password
	// checks at once, default 4), as in [imap] and [pop3].
	throttle.LoginConfig
	// Filters are the checks that run on submitted mail, whatever their
	// stage (default: ratelimit-mail, ratelimit-rcpt, mime, gtube,
	// attachments, antivirus). The rate limits count each authenticated
	// user's messages and recipients ([filters.ratelimit]
	// messages_per_user, recipients_per_user), so that a compromised
	// account cannot blast out mail: over them, MAIL or RCPT gets 451
	// 4.7.1 before DATA. The checks
	// that judge a stranger's MX traffic (reverse DNS, SPF, DNS lists,
	// greylisting, Bayes...) do not fit a known user's own mail, as in
	// Postfix's submission service, which runs none of
	// smtpd_*_restrictions but permit_sasl_authenticated. The submission
	// policy ([policies.submission]) decides on what they find, and its
	// disable_filters narrows this list further.
	Filters []string `toml:"filters"`
	// HideClientIP leaves the client's address and HELO name out of the
	// Received field of submitted mail (default false), so that a user's
	// home address does not travel with their mail.
	HideClientIP bool `toml:"hide_client_ip"`
	// SendAs lists, per user, the addresses they may send as besides their
	// own (and its sub-addresses): "sales@example.com", or "@example.org"
	// for any address of a domain. Both the envelope sender (MAIL FROM)
	// and the From field must be the user's.
	SendAs map[string][]string `toml:"send_as"`
}

// DefaultSubmissionFilters are the checks that run on submitted mail
// unless smtp.submission.filters says otherwise. ratelimit-connect is not
// among them: before AUTH the client is nobody in particular, and many
// users behind one carrier-grade NAT would share its count.
var DefaultSubmissionFilters = []string{"ratelimit-mail", "ratelimit-rcpt", "mime", "gtube", "attachments", "antivirus"}

// Validate fills defaults and checks the configuration. The filter names
// are checked by the caller, which knows the filters.
func (c *SubmissionConfig) Validate() error {
	errs := []error{c.LoginConfig.Validate()}
	if c.Filters == nil {
		c.Filters = append([]string(nil), DefaultSubmissionFilters...)
	}
	sendAs := make(map[string][]string, len(c.SendAs))
	for user, list := range c.SendAs {
		key := address.Normalize(user)
		if !address.Valid(key) {
			errs = append(errs, fmt.Errorf("send_as: %q is not an address", user))
			continue
		}
		for i, a := range list {
			a = address.Normalize(a)
			if d, ok := strings.CutPrefix(a, "@"); ok && validDomain(d) || !ok && address.Valid(a) {
				sendAs[key] = append(sendAs[key], a)
				continue
			}
			errs = append(errs, fmt.Errorf("send_as.%q[%d]: %q is neither an address nor \"@domain\"", user, i, list[i]))
		}
	}
	c.SendAs = sendAs
	return errors.Join(errs...)
}

// SubmissionObserver is told of submission logins and messages, when the
// Observer implements it. Results come from small fixed sets.
type SubmissionObserver interface {
	// SubmissionLogin counts an AUTH by result: "ok", or a
	// throttle.Reason constant.
	SubmissionLogin(result string)
	// Submitted counts a submitted message by result: "accepted",
	// "quarantined", "rejected", "tempfail", "sender_refused".
	Submitted(result string)
}

// Signer signs submitted mail (DKIM, delivery/dkimsign).
type Signer interface {
	// Sign returns the fields to prepend to msg, a DKIM-Signature, for
	// mail whose From is in domain; nil when there is no key for it.
	Sign(domain string, msg []byte) ([]byte, error)
}

// submitState is what a submission session knows of its client.
type submitState struct {
	user mailstore.User // ID 0 until AUTH succeeds
}

// Replies of submission.
var (
	// RFC 4954 §6: the mechanism needs an encrypted connection.
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required: STARTTLS first"}
	// RFC 4954 §6: a transaction before AUTH.
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errAuthTemp     = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	// RFC 5321 §4.2.2 553: mailbox name not allowed (Postfix's
	// reject_sender_login_mismatch answers the same).
	errNotYourSender = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address not owned by the authenticated user"}
	errNotYourFrom   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "From field not owned by the authenticated user"}
)

// submitObserver returns the submission counters, or a no-op.
func (s *Server) submitObserver() SubmissionObserver {
	if o, ok := s.obs.(SubmissionObserver); ok {
		return o
	}
	return nopSubmissionObserver{}
}

type nopSubmissionObserver struct{}

func (nopSubmissionObserver) SubmissionLogin(string) {}
func (nopSubmissionObserver) Submitted(string)       {}

// authAllowed reports whether the client may AUTH now: over TLS, or in
// clear from loopback when allowed.
func (s *session) authAllowed() bool {
	return s.info.TLS != nil || s.srv.cfg.Submission.AllowPlaintextLoopback && s.info.RemoteIP.IsLoopback()
}

// AuthMechanisms implements smtp.AuthSession: PLAIN and LOGIN on
// submission once AUTH is allowed (nothing is advertised before
// STARTTLS, RFC 4954 §4), nothing on the MX listeners.
func (s *session) AuthMechanisms() []string {
	if s.sub == nil || !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.sub == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	if !s.authAllowed() {
		s.srv.submitObserver().SubmissionLogin(throttle.ReasonPlaintext)
		s.log.Info("submission login refused before TLS")
		return nil, errEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 §2: an empty authorization identity is the
			// user's own; acting as someone else is not offered.
			if identity != "" && address.Normalize(identity) != address.Normalize(username) {
				s.srv.submitObserver().SubmissionLogin(throttle.ReasonIdentity)
				return smtp.ErrAuthFailed
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: s.login}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// login checks a password through the throttle's gate, which slows
// repeated failures per client and per account, as IMAP and POP3 logins.
func (s *session) login(username, password string) error {
	account := address.Normalize(username)
	var u mailstore.User
	ok, err := s.srv.gate.Check(s.info.RemoteIP, account, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		u, err = s.srv.deps.Store.Authenticate(ctx, account, password)
		if errors.Is(err, mailstore.ErrAuthFailed) {
			return false, nil
		}
		return err == nil, err
	})
	obs := s.srv.submitObserver()
	switch {
	case errors.Is(err, throttle.ErrClosing):
		return errAuthTemp
	case err != nil:
		obs.SubmissionLogin(throttle.ReasonInternal)
		s.log.Error("submission login: store failed", "user", account, "err", err)
		return errAuthTemp
	case !ok:
		obs.SubmissionLogin(throttle.ReasonCredentials)
		s.log.Info("submission login failed", "user", account)
		return smtp.ErrAuthFailed
	}
	obs.SubmissionLogin("ok")
	s.sub.user = u
	s.info.AuthUser = u.Address
	s.log = s.log.With("user", u.Address)
	s.log.Info("submission login", "tls", s.info.TLS != nil)
	return nil
}

// loginServer is the server side of SASL LOGIN
// (draft-murchison-sasl-login): "Username:", then "Password:". go-sasl
// has only its client.
type loginServer struct {
	auth func(username, password string) error
	step int
	user string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if len(resp) == 0 {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2 // the username as initial response
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected response")
}

// mayUse reports whether the authenticated user may send as addr: their
// own address (with any sub-address) or one that send_as gives them.
func (s *session) mayUse(addr string) bool {
	addr = address.Normalize(addr)
	local, domain, ok := address.Split(addr)
	if !ok {
		return false
	}
	own := s.sub.user.Address
	if s.mailbox(local, domain) == own || addr == own {
		return true
	}
	for _, a := range s.srv.cfg.Submission.SendAs[own] {
		if a == addr || a == "@"+domain {
			return true
		}
	}
	return false
}

// submissionMail checks MAIL FROM on submission: after AUTH, and only as
// one of the user's addresses. The null sender is allowed: RFC 8098 §2.1
// sends disposition notifications with it.
func (s *session) submissionMail(from string) *smtp.SMTPError {
	if s.sub.user.ID == 0 {
		return errAuthRequired
	}
	if from != "" && !s.mayUse(from) {
		s.srv.submitObserver().Submitted("sender_refused")
		s.log.Info("submission sender refused", "from", from)
		return errNotYourSender
	}
	return nil
}

// checkFrom checks the From field of a submitted message: every address in
// it must be the user's (RFC 5322 §3.6.2 allows several).
func (s *session) checkFrom(msg *filters.Message) *smtp.SMTPError {
	if s.sub == nil {
		return nil
	}
	h := mail.Header{Header: message.Header{Header: msg.Header}}
	list, err := h.AddressList("From")
	ok := err == nil && len(list) > 0
	for _, a := range list {
		ok = ok && s.mayUse(a.Address)
	}
	if !ok {
		s.srv.submitObserver().Submitted("sender_refused")
		s.log.Info("submission From field refused", "from", h.Get("From"))
		return errNotYourFrom
	}
	return nil
}

// submissionRcpt accepts any recipient on submission, that is what it is
// for: a local user (who must exist), a relay domain's recipient (whom
// the downstream must know), or anyone elsewhere, sent on.
func (s *session) submissionRcpt(ctx context.Context, addr, local, domain string) error {
	pol := s.j.Policies.Submission()
	switch {
	case s.srv.isLocalDomain(domain):
		mailbox := s.mailbox(local, domain)
		user, err := s.srv.deps.Store.LookupUser(ctx, mailbox)
		if errors.Is(err, mailstore.ErrNoUser) {
			return s.refused("rcpt", "recipient refused", "no such user", errNoUser, "from", s.env.From, "rcpt", addr)
		}
		if err != nil {
			s.log.Error("recipient lookup failed", "rcpt", addr, "err", err)
			s.srv.obs.StoreError("lookup")
			return s.reply("rcpt", errTempLocal)
		}
		return s.acceptRcpt(ctx, recipient{addr: mailbox, userID: user.ID}, pol)
	case s.srv.isRelayDomain(domain):
		if err := s.verifyRelay(ctx, addr); err != nil {
			return err
		}
	case s.srv.deps.Outbound == nil:
		return s.refused("rcpt", "recipient refused", "no outbound queue", errRelayDenied, "from", s.env.From, "rcpt", addr)
	}
	return s.acceptRcpt(ctx, recipient{addr: addr, onward: true}, pol)
}

// submissionHeader returns the fields prepended to a submitted message:
// its DKIM-Signature (when moat has a key for the From domain) and the
// Received field (RFC 5321 §4.4), without the client's name and address
// when smtp.submission.hide_client_ip is set.
func (s *session) submissionHeader(queueID string, msg *filters.Message, body []byte) ([]byte, *smtp.SMTPError) {
	var b bytes.Buffer
	if signer := s.srv.deps.Signer; signer != nil {
		sig, err := signer.Sign(fromDomain(msg), body)
		if err != nil {
			s.log.Error("DKIM signing failed", "queue", queueID, "err", err)
			return nil, errTempLocal
		}
		b.Write(sig)
	}
	b.WriteString("Received: from ")
	switch {
	case !s.srv.cfg.Submission.HideClientIP:
		b.WriteString(sanitize(s.info.Helo))
		b.WriteString(" ([")
		b.WriteString(s.info.RemoteIP.String())
		b.WriteString("])")
	case strings.HasPrefix(s.info.Helo, "["):
		b.WriteString("unknown") // an address literal is the client's address
	default:
		b.WriteString(sanitize(s.info.Helo))
	}
	s.writeReceivedBy(&b, queueID)
	b.WriteString("; ")
	b.WriteString(time.Now().Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// fromDomain is the domain of the (first) From address, whose key signs.
func fromDomain(msg *filters.Message) string {
	h := mail.Header{Header: message.Header{Header: msg.Header}}
	list, err := h.AddressList("From")
	if err != nil || len(list) == 0 {
		return ""
	}
	return address.Domain(address.Normalize(list[0].Address))
}
