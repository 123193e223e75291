package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
)

// isRelayDomain reports whether moat receives mail for domain and sends it
// on to the organisation's servers.
func (s *Server) isRelayDomain(domain string) bool {
	return s.relays[domain]
}

// relayRcpt accepts a recipient of a relay domain that the downstream
// knows, under the recipient's policy, as a local recipient is.
func (s *session) relayRcpt(ctx context.Context, addr string) error {
	if err := s.guardOver(ctx, addr); err != nil {
		return err
	}
	if err := s.verifyRelay(ctx, addr); err != nil {
		return err
	}
	return s.acceptRcpt(ctx, recipient{addr: addr, onward: true}, s.j.Policies.For(addr))
}

// verifyRelay asks the verifier whether the downstream knows addr
// (RFC 5321 §3.5.3 verification, so that moat never accepts what it would
// have to bounce: backscatter). Its 4xx passes through as it is; a fault
// of its own is a 451: a temporary fault is never a permanent refusal.
func (s *session) verifyRelay(ctx context.Context, addr string) error {
	v := s.srv.deps.Verifier
	if v == nil {
		return nil
	}
	err := v.VerifyRecipient(ctx, addr)
	var re *queue.ReplyError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, queue.ErrNoRecipient):
		s.countUnknown(ctx)
		return s.refused("rcpt", "recipient refused", "unknown downstream", errNoUser, "from", s.env.From, "rcpt", addr)
	case errors.As(err, &re) && re.Temporary():
		return s.refused("rcpt", "recipient refused", "deferred downstream: "+re.Error(),
			&smtp.SMTPError{Code: re.Code, EnhancedCode: downstreamEnhanced(re), Message: "Recipient verification deferred: " + re.Text},
			"from", s.env.From, "rcpt", addr)
	}
	s.log.Warn("relay recipient verification failed", "rcpt", addr, "err", err)
	return s.refused("rcpt", "recipient refused", "verification failed", errTempLocal, "from", s.env.From, "rcpt", addr)
}

// downstreamEnhanced is a downstream 4xx's enhanced code, or 4.4.0 when it
// gave none (or one of another class).
func downstreamEnhanced(re *queue.ReplyError) smtp.EnhancedCode {
	if re.Enhanced[0] != 4 {
		return smtp.EnhancedCode{4, 4, 0}
	}
	return smtp.EnhancedCode(re.Enhanced)
}

// origin names why moat sends a message on, for the queue's logs.
func (s *session) origin() string {
	if s.sub != nil {
		return "submission"
	}
	return "inbound"
}

// split returns the transaction's store users and the recipients sent on.
func (s *session) split() (users []int64, onward []string) {
	for _, r := range s.rcpts {
		if r.onward {
			onward = append(onward, r.addr)
		} else {
			users = append(users, r.userID)
		}
	}
	return users, onward
}

// deliver stores the message in the local recipients' INBOX and hands it
// to the outbound queue for the others, both at once; nil means every part
// is durable. A failure of either is a 451 for the whole message: the
// client sends it again, and the part that had succeeded gets it twice
// (SMTP's at-least-once), never none.
func (s *session) deliver(ctx context.Context, queueID string, header, body []byte) *smtp.SMTPError {
	users, onward := s.split()
	var wg sync.WaitGroup
	var qerr error
	var qid string
	if len(onward) > 0 {
		if s.srv.deps.Outbound == nil {
			s.log.Error("no outbound queue for recipients sent on", "queue", queueID, "rcpts", onward)
			return errTempLocal
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			qid, qerr = s.srv.deps.Outbound.Enqueue(ctx, &queue.Message{
				From: s.env.From, Rcpts: onward, Header: header, Body: body, Origin: s.origin()})
		}()
	}
	var serr error
	if len(users) > 0 {
		targets := make([]mailstore.Target, len(users))
		for i, u := range users {
			targets[i] = mailstore.Target{UserID: u, Mailbox: "INBOX"}
		}
		_, serr = s.srv.deps.Store.Deliver(ctx, &mailstore.Delivery{Header: header, Body: body, Targets: targets})
	}
	wg.Wait()
	if serr != nil {
		s.log.Error("delivery failed", "queue", queueID, "err", serr)
		s.srv.obs.StoreError("deliver")
	}
	if qerr != nil {
		s.log.Error("queueing failed", "queue", queueID, "rcpts", onward, "err", qerr)
		s.srv.obs.StoreError("queue")
	}
	if serr != nil || qerr != nil {
		return errTempLocal
	}
	if len(onward) > 0 {
		s.log.Info("queued", "queue", queueID, "outbound", qid, "rcpts", onward)
	}
	return nil
}

// hold quarantines the message: in the local recipients' Quarantine
// folders, and, for the recipients sent on, in the Quarantine folder of
// smtp.quarantine_owner (the admin's shared view), with those recipients
// in the record so that release sends it on to them.
func (s *session) hold(ctx context.Context, queueID string, header, body []byte, rec quarantine.Record) (int64, *smtp.SMTPError) {
	users, onward := s.split()
	if len(onward) > 0 {
		owner := s.srv.cfg.QuarantineOwner
		if owner == "" {
			s.log.Error("quarantine of recipients sent on needs smtp.quarantine_owner", "queue", queueID, "rcpts", onward)
			return 0, errTempLocal
		}
		u, err := s.srv.deps.Store.LookupUser(ctx, owner)
		if err != nil {
			s.log.Error("quarantine owner lookup failed", "queue", queueID, "owner", owner, "err", err)
			s.srv.obs.StoreError("lookup")
			return 0, errTempLocal
		}
		rec.Onward = onward
		if !slices.Contains(users, u.ID) {
			users = append(users, u.ID)
			rec.Holder = u.ID
		}
	}
	e, err := s.srv.deps.Quarantine.Put(ctx, header, body, rec, users)
	if err != nil {
		s.log.Error("quarantine failed", "queue", queueID, "err", err)
		s.srv.obs.StoreError("quarantine")
		return 0, errTempLocal
	}
	return e.ID, nil
}

// guardOver defers every recipient of a client past its allowance of
// unknown recipients, before the lookup, so that a user and a non-user
// get the same reply (a dictionary attack must not learn which exist).
func (s *session) guardOver(ctx context.Context, addr string) error {
	guard := s.j.Recipients
	if guard == nil {
		return nil
	}
	over, err := guard.RefusalsOver(ctx, s.info.RemoteIP)
	if err != nil {
		s.log.Warn("unknown-recipient count failed", "err", err)
		return nil
	}
	if over {
		s.log.Info("recipient deferred: too many unknown recipients", "from", s.env.From, "rcpt", addr)
		return s.reply("rcpt", errPolicyTemp)
	}
	return nil
}

// countUnknown tells the guard of a recipient refused as unknown.
func (s *session) countUnknown(ctx context.Context) {
	if guard := s.j.Recipients; guard != nil {
		if _, err := guard.RecipientRefused(ctx, s.info.RemoteIP); err != nil {
			s.log.Warn("unknown-recipient count failed", "err", err)
		}
	}
}

// acceptRcpt runs the rcpt-stage checks on an accepted recipient under its
// policy and adds it to the transaction. Recipients of differing policies
// go in separate transactions (errPolicySplit).
func (s *session) acceptRcpt(ctx context.Context, r recipient, pol *policies.Policy) error {
	for _, have := range s.rcpts {
		if have.addr == r.addr || !r.onward && !have.onward && have.userID == r.userID {
			return nil // the same mailbox twice: deliver once
		}
	}
	if s.policy != nil && pol != s.policy {
		return s.reply("rcpt", errPolicySplit)
	}
	in := &filters.Input{Conn: &s.info, Env: &s.env, Rcpt: r.addr}
	found, v := s.judge(ctx, filters.StageRcpt, in, pol, &s.found)
	if err := s.refuse("rcpt", "recipient refused", v, "from", s.env.From, "rcpt", r.addr); err != nil {
		return err
	}
	s.found = found
	s.policy = pol
	s.rcpts = append(s.rcpts, r)
	s.env.Rcpts = append(s.env.Rcpts, r.addr)
	return nil
}

// mailbox strips a sub-address (RFC 5233: user+tag) from a local part.
func (s *session) mailbox(local, domain string) string {
	if d := *s.srv.cfg.RecipientDelimiter; d != "" {
		if i := strings.Index(local, d); i > 0 {
			local = local[:i]
		}
	}
	return local + "@" + domain
}
