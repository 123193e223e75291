package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/address"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/rules"
)

// stageTimeout bounds the work of one SMTP phase beyond the per-filter
// deadlines (which the pipeline enforces) and store writes.
const stageTimeout = 2 * time.Minute

// recipient is an accepted RCPT TO.
type recipient struct {
	addr   string // as given, normalised to lower case
	userID int64
	// onward: no mailbox here; the message goes to the outbound queue
	// (a relay domain's recipient, a submitted message's remote one).
	onward bool
}

// session is one SMTP session (go-smtp starts a new one after STARTTLS).
type session struct {
	srv  *Server
	j    *Judge // the pipeline and policies of this transaction
	conn *smtp.Conn
	tc   *trackedConn
	info filters.Connection
	log  *slog.Logger
	// helo is what the connect and helo stages found, with the symbols of
	// the rules they matched: every transaction starts from it.
	helo rules.Result

	// the current transaction
	env filters.Envelope
	// found is helo plus what this transaction's stages found so far.
	found  rules.Result
	rcpts  []recipient
	policy *policies.Policy
	// allowing is the transaction's policy for recipients who
	// allow-listed its sender, derived once from policy (one pointer, so
	// that such recipients share a transaction).
	allowing map[*policies.Policy]*policies.Policy
	rejected *smtp.SMTPError // a connect/helo verdict that refuses every transaction
	// sub is the submission state on a submission listener, nil on MX.
	sub *submitState
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	tc := trackedOf(c.Conn())
	if tc == nil {
		return nil, errTempLocal
	}
	sess := &session{srv: s, conn: c, tc: tc, info: tc.info}
	if tc.l.submission {
		sess.sub = &submitState{}
	}
	sess.info.Helo = c.Hostname()
	if commandTooLong(s.cfg.MaxLineLength, "EHLO", sess.info.Helo) {
		// go-smtp answers EHLO with this error; the client may try again.
		s.log.Info("helo refused", "conn", sess.info.ID, "ip", sess.info.RemoteIP.String(),
			"helo", trim(sess.info.Helo), "reply", errLineTooLong.Code, "reason", "command line too long")
		s.obs.Reply("helo", errLineTooLong.Code)
		return nil, errLineTooLong
	}
	if st, ok := c.TLSConnectionState(); ok {
		sess.info.TLS = &st
	}
	sess.log = s.log.With("conn", sess.info.ID, "ip", sess.info.RemoteIP.String())
	ctx, cancel := context.WithTimeout(context.Background(), stageTimeout)
	defer cancel()
	sess.j = s.judge.Load()
	def := sess.basePolicy()
	if !tc.ready {
		// Once per connection: what the connect stage finds survives
		// STARTTLS, after which go-smtp starts a new session.
		in := &filters.Input{Conn: &sess.info, Env: &filters.Envelope{}}
		found, v := sess.judge(ctx, filters.StageConnect, in, def, &rules.Result{})
		tc.found, tc.ready = found, true
		tc.info.ReverseName = found.Fact(filters.FactReverseName)
		tc.refusal = sess.refuse("connect", "connection refused", v)
	}
	sess.info.ReverseName = tc.info.ReverseName
	// A refusal at connect or helo does not drop the connection: the
	// session stays so that go-smtp answers every later command with it
	// (as Postfix's delayed reject does) instead of "introduce yourself".
	if sess.rejected = tc.refusal; sess.rejected != nil {
		return sess, nil
	}
	in := &filters.Input{Conn: &sess.info, Env: &filters.Envelope{}}
	found, v := sess.judge(ctx, filters.StageHelo, in, def, &tc.found)
	sess.helo = found
	sess.rejected = sess.refuse("helo", "connection refused", v, "helo", sess.info.Helo)
	return sess, nil
}

// judge is the one judging path of every stage of the dialogue: it runs
// the stage's checks under pol, with what the earlier stages found (base)
// as their Input.Prior, decides, and returns everything known after the
// stage (base, the stage's findings and the symbols of the rules that
// matched) with the verdict. base is left as it was, so that a refused
// recipient adds nothing to its transaction.
func (s *session) judge(ctx context.Context, stage filters.Stage, in *filters.Input, pol *policies.Policy, base *rules.Result) (rules.Result, rules.Verdict) {
	in.Prior = &base.Result
	res := s.j.Pipeline.Run(ctx, stage, in, s.runs(pol))
	// Clipped, so that appending copies rather than writes into the
	// spare capacity of base's slices.
	found := rules.Result{
		Result: filters.Result{
			Symbols: slices.Clip(base.Symbols),
			Auth:    slices.Clip(base.Auth),
			Facts:   slices.Clip(base.Facts),
			Demands: slices.Clip(base.Demands),
		},
		Tempfail: base.Tempfail,
		Failed:   slices.Clip(base.Failed),
	}
	found.Add(res)
	v := s.j.Pipeline.Decide(stage, in, found, pol)
	// Rules' symbols stay with what was found: a tag or quarantine a
	// rule forces before DATA acts at DATA (rules.Pipeline.Decide).
	found.Symbols = append(found.Symbols, v.Added...)
	return found, v
}

// refuse is what a verdict of the connect to rcpt stages does to the
// dialogue: only reject and tempfail act there. It logs and counts the
// refusal (what says what was refused, attrs who) and returns it, or nil
// when the dialogue goes on.
func (s *session) refuse(phase, what string, v rules.Verdict, attrs ...any) *smtp.SMTPError {
	err := s.refusalOf(v)
	if err == nil {
		return nil
	}
	s.log.Info(what, append(attrs, "action", v.Action.String(), "score", v.Score,
		"symbols", v.SymbolNames(), "reasons", v.Reasons)...)
	s.srv.obs.Reply(phase, err.Code)
	return err
}

// Generic replies: the client learns that a policy refused it, never which
// internal check did (a probe must not learn our rules).
var (
	errTempLocal   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
	errPolicy      = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message refused by policy"}
	errPolicyTemp  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Policy check deferred, try again later"}
	errRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	errNoUser      = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errBadAddress  = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errBadSender   = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	// RFC 5321 §4.5.3.1.10: a client that gets 452 for a RCPT sends that
	// recipient in a later transaction. moat uses it to keep one policy
	// per transaction, so that each recipient's policy decides alone.
	errPolicySplit = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Recipient policy differs, send it in another transaction"}
	errTooLarge    = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed limit"}
	errDataTimeout = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout reading the message"}
	// Postfix answers a command line over line_length_limit with
	// "500 5.5.2 Error: command too long" (RFC 5321 §4.5.3.1.4: 512 is
	// the least a server must take; max_line_length is moat's bound).
	errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Command line too long"}
)

// earlyReply maps a verdict of the connect to rcpt stages: only reject and
// tempfail act there.
func earlyReply(v rules.Verdict) *smtp.SMTPError {
	switch v.Action {
	case policies.ActionReject:
		return withReply(errPolicy, v.Reply)
	case policies.ActionTempfail:
		return withReply(errPolicyTemp, v.Reply)
	}
	return nil
}

// refusalOf is earlyReply, with the text the deciding demand asked for
// (rules.Verdict.Text) when the client is authenticated: a known user may
// learn that they are over their own rate limit, a stranger never learns
// which check refused it.
func (s *session) refusalOf(v rules.Verdict) *smtp.SMTPError {
	err := earlyReply(v)
	if err == nil || v.Text == "" || s.info.AuthUser == "" {
		return err
	}
	return &smtp.SMTPError{Code: err.Code, EnhancedCode: err.EnhancedCode, Message: v.Text}
}

// withReply gives a refusal the code a rule asked for (its reply key, such
// as 554 5.7.0 for a virus), keeping the generic text.
func withReply(e *smtp.SMTPError, r rules.Reply) *smtp.SMTPError {
	if r.IsZero() {
		return e
	}
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: e.Message}
}

func (s *session) reply(phase string, err *smtp.SMTPError) error {
	s.srv.obs.Reply(phase, err.Code)
	return err
}

// refused logs the decision line of a refusal the dialogue itself makes
// (not a verdict of the filters, which refuse logs): every refusal at
// every stage leaves one, with who was refused (attrs) and why.
func (s *session) refused(phase, what, reason string, err *smtp.SMTPError, attrs ...any) error {
	s.log.Info(what, append(attrs, "reply", err.Code, "reason", reason)...)
	return s.reply(phase, err)
}

// trim shortens what a client sent for a log line.
func trim(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// commandTooLong reports whether the command line verb+args, CRLF
// included, would exceed limit (go-smtp's own line limit is the message
// size, so that long text lines in DATA are accepted; see Server.Serve).
func commandTooLong(limit int, verb string, args ...string) bool {
	n := len(verb) + 2
	for _, a := range args {
		n += len(a) + 1
	}
	return n > limit
}

// Reset discards the current transaction.
func (s *session) Reset() {
	s.env = filters.Envelope{}
	s.found = rules.Result{}
	s.rcpts = s.rcpts[:0]
	s.policy = nil
	clear(s.allowing)
}

// Logout ends the session.
func (s *session) Logout() error { return nil }

// Mail starts a transaction.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.rejected != nil {
		return s.reply("mail", s.rejected)
	}
	s.Reset()
	// A transaction is judged by one configuration: a reload (SIGHUP)
	// takes effect at the next MAIL.
	s.j = s.srv.judge.Load()
	if opts == nil {
		opts = &smtp.MailOptions{}
	}
	var auth string
	if opts.Auth != nil {
		auth = *opts.Auth
	}
	if commandTooLong(s.srv.cfg.MaxLineLength, "MAIL FROM:<> SIZE=0000000000 BODY=8BITMIME SMTPUTF8", from, opts.EnvelopeID, auth) {
		return s.refused("mail", "sender refused", "command line too long", errLineTooLong, "from", trim(from))
	}
	from = strings.TrimSpace(from)
	if from != "" && !address.Valid(from) {
		return s.refused("mail", "sender refused", "bad address", errBadSender, "from", trim(from))
	}
	if s.sub != nil {
		if err := s.submissionMail(from); err != nil {
			return s.reply("mail", err)
		}
	}
	s.env.From = from
	s.env.SMTPUTF8 = opts.UTF8
	s.env.Body8Bit = opts.Body == smtp.Body8BitMIME || opts.Body == smtp.BodyBinaryMIME
	s.env.DeclaredSize = opts.Size
	ctx, cancel := context.WithTimeout(context.Background(), stageTimeout)
	defer cancel()
	in := &filters.Input{Conn: &s.info, Env: &s.env}
	found, v := s.judge(ctx, filters.StageMail, in, s.basePolicy(), &s.helo)
	if err := s.refuse("mail", "sender refused", v, "from", from); err != nil {
		return err
	}
	s.found = found
	return nil
}

// Rcpt accepts a recipient if it is a local user or a relay domain's
// recipient that the downstream knows (no open relay), or anyone on
// submission, and the rcpt-stage checks pass.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.rejected != nil {
		return s.reply("rcpt", s.rejected)
	}
	var orcpt string
	if opts != nil {
		orcpt = opts.OriginalRecipient
	}
	if commandTooLong(s.srv.cfg.MaxLineLength, "RCPT TO:<> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;", to, orcpt) {
		return s.refused("rcpt", "recipient refused", "command line too long", errLineTooLong, "from", s.env.From, "rcpt", trim(to))
	}
	addr := address.Normalize(to)
	if !address.Valid(addr) {
		return s.refused("rcpt", "recipient refused", "bad address", errBadAddress, "from", s.env.From, "rcpt", trim(to))
	}
	local, domain, _ := address.Split(addr) // Valid: it has an '@'
	ctx, cancel := context.WithTimeout(context.Background(), stageTimeout)
	defer cancel()
	switch {
	case s.sub != nil:
		return s.submissionRcpt(ctx, addr, local, domain)
	case s.srv.isRelayDomain(domain):
		return s.relayRcpt(ctx, addr)
	case !s.srv.isLocalDomain(domain):
		// RFC 5321 §3.6.2: accepting mail for a domain we do not serve
		// would make moat an open relay.
		s.log.Info("relay denied", "from", s.env.From, "rcpt", addr)
		return s.reply("rcpt", errRelayDenied)
	}
	mailbox := s.mailbox(local, domain)
	if err := s.guardOver(ctx, addr); err != nil {
		return err
	}
	user, err := s.srv.deps.Store.LookupUser(ctx, mailbox)
	if errors.Is(err, mailstore.ErrNoUser) {
		s.countUnknown(ctx)
		return s.refused("rcpt", "recipient refused", "no such user", errNoUser, "from", s.env.From, "rcpt", addr)
	}
	if err != nil {
		s.log.Error("recipient lookup failed", "rcpt", addr, "err", err)
		s.srv.obs.StoreError("lookup")
		return s.reply("rcpt", errTempLocal)
	}
	for _, r := range s.rcpts {
		if r.userID == user.ID && !r.onward {
			return nil // the same mailbox twice: deliver once
		}
	}
	pol := s.j.Policies.For(mailbox)
	allowed, err := s.srv.deps.Store.SenderAllowed(ctx, user.ID, s.env.From)
	if err != nil {
		s.log.Error("allow list lookup failed", "rcpt", addr, "err", err)
		s.srv.obs.StoreError("lookup")
		return s.reply("rcpt", errTempLocal)
	}
	if allowed {
		// The recipient allow-listed this sender (released its mail from
		// quarantine): score-based actions are waived for them alone.
		if s.allowing == nil {
			s.allowing = make(map[*policies.Policy]*policies.Policy)
		}
		if s.allowing[pol] == nil {
			s.allowing[pol] = pol.WithSenderAllowed()
		}
		pol = s.allowing[pol]
	}
	return s.acceptRcpt(ctx, recipient{addr: mailbox, userID: user.ID}, pol)
}

// Data receives the message, runs the data-stage checks, and delivers,
// quarantines or refuses it. A 250 reply is sent only after the message is
// durably stored.
func (s *session) Data(r io.Reader) error {
	start := time.Now()
	if s.rejected != nil {
		return s.reply("data", s.rejected)
	}
	if len(s.rcpts) == 0 {
		return s.reply("data", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"})
	}
	raw, err := s.readMessage(r)
	if err != nil {
		// The message's decision line, as for a verdict: refused (or
		// deferred) before the filters saw it.
		action := "reject"
		if err.Code/100 == 4 {
			action = "tempfail"
		}
		s.log.Info("message",
			"helo", s.info.Helo, "from", s.env.From, "rcpts", s.env.Rcpts,
			"action", action, "reply", err.Code, "reason", err.Message,
			"duration", time.Since(start).Round(time.Microsecond))
		return s.reply("data", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stageTimeout)
	defer cancel()
	msg := filters.ParseMessage(raw)
	msg.Limits = s.j.Content
	if err := s.checkFrom(msg); err != nil {
		return s.reply("data", err)
	}
	in := &filters.Input{Conn: &s.info, Env: &s.env, Msg: msg}
	found, v := s.judge(ctx, filters.StageData, in, s.policy, &s.found)
	s.found = found // for the Authentication-Results field
	s.srv.obs.Verdict(v, found.Auth)
	queueID := newID()
	quarantineID, err := s.act(ctx, queueID, msg, v)
	// Submitted mail is not learned: the classifier did not judge it, and
	// a user's own mail is not the stream it models.
	if err == nil && s.srv.deps.Learn != nil && s.sub == nil {
		s.srv.deps.Learn(msg, v)
	}
	code := 250
	if err != nil {
		code = err.Code
	}
	// docs/operations.md names every field: "where is my mail?" is one
	// grep for its Message-ID, queue id or quarantine id.
	s.log.Info("message",
		"queue", queueID, "message_id", msg.Header.Get("Message-Id"), "quarantine_id", quarantineID,
		"helo", s.info.Helo, "from", s.env.From, "rcpts", s.env.Rcpts,
		"size", len(raw), "score", v.Score, "symbols", v.SymbolNames(), "action", v.Action.String(),
		"policy", v.Policy, "reply", code, "duration", time.Since(start).Round(time.Microsecond))
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("message symbols", "queue", queueID, "symbols", v.SymbolDetails())
	}
	if s.sub != nil {
		s.srv.submitObserver().Submitted(submitResult(v, err))
	}
	if err != nil {
		return s.reply("data", err)
	}
	s.srv.obs.Reply("data", 250)
	// go-smtp sends the code and text of an SMTPError as they are; a 250
	// "error" is how a backend names the queue id in the final reply.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + queueID}
}

// readMessage reads the whole message under the data timeout.
func (s *session) readMessage(r io.Reader) ([]byte, *smtp.SMTPError) {
	if nc := s.conn.Conn(); nc != nil {
		nc.SetReadDeadline(time.Now().Add(s.srv.cfg.DataTimeout))
	}
	// Size the buffer from the SIZE parameter (RFC 1870), but never
	// reserve more than 1 MiB on a client's word: a thousand connections
	// declaring 25 MB each must not cost 25 GB before a byte arrives.
	var buf bytes.Buffer
	grow := int64(16 << 10)
	if n := s.env.DeclaredSize + 512; n > grow {
		grow = min(n, 1<<20)
	}
	buf.Grow(int(grow))
	if _, err := buf.ReadFrom(r); err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, smtp.ErrDataTooLarge):
			return nil, errTooLarge
		case errors.As(err, &ne) && ne.Timeout():
			return nil, errDataTimeout
		case errors.Is(err, smtp.ErrTooLongLine):
			// RFC 5321 §4.5.3.1.6 limits a text line to 1000 bytes, but
			// Postfix takes longer ones (it splits them at
			// line_length_limit) and so does moat, stored as received: a
			// line reaches go-smtp's limit (Server.Serve) only past the
			// message size.
			return nil, errTooLarge
		}
		s.log.Warn("reading message failed", "err", err)
		return nil, errTempLocal
	}
	return buf.Bytes(), nil
}

// act carries out a data-stage verdict. A nil error means the message is
// durably stored: in the store, the quarantine or the outbound queue; the
// id is its quarantine id when it was quarantined (0 otherwise).
func (s *session) act(ctx context.Context, queueID string, msg *filters.Message, v rules.Verdict) (int64, *smtp.SMTPError) {
	if err := s.refusalOf(v); err != nil {
		return 0, err
	}
	body := s.rewrite(msg, v)
	var header []byte
	if s.sub != nil {
		var err *smtp.SMTPError
		if header, err = s.submissionHeader(queueID, msg, body); err != nil {
			return 0, err
		}
	} else {
		header = s.traceHeader(queueID, v)
	}
	if v.Action == policies.ActionQuarantine {
		return s.hold(ctx, queueID, header, body, s.quarantineRecord(queueID, msg, v))
	}
	return 0, s.deliver(ctx, queueID, header, body)
}

// basePolicy is the policy before any recipient is known: the default
// policy, or the submission policy on submission.
func (s *session) basePolicy() *policies.Policy {
	if s.sub != nil {
		return s.j.Policies.Submission()
	}
	return s.j.Policies.Default()
}

// runs says which filters run under pol: those pol runs, and on
// submission only those of smtp.submission.filters.
func (s *session) runs(pol *policies.Policy) func(string) bool {
	if s.sub == nil {
		return pol.Runs
	}
	set := s.srv.submitFilters
	return func(f string) bool { return set[f] && pol.Runs(f) }
}

// submitResult labels a submitted message's outcome for metrics.
func submitResult(v rules.Verdict, err *smtp.SMTPError) string {
	switch {
	case err == nil && v.Action == policies.ActionQuarantine:
		return "quarantined"
	case err == nil:
		return "accepted"
	case err.Code >= 500:
		return "rejected"
	}
	return "tempfail"
}
