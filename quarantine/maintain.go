package quarantine

import (
	"context"
	"log/slog"
	"time"
)

// roundTimeout bounds one round of Maintain.
const roundTimeout = 10 * time.Minute

// Maintain keeps the quarantine in shape until ctx ends: at once, then
// every interval, it deletes the mail held longer than
// Config.ExpireAfter (Expire), delivers the digests that are due when
// Config.Digest is on (SendDigests, from digestFrom, every
// Config.DigestInterval), and drops the records of messages users deleted
// from their Quarantine folders (Tidy). It logs what each step did or why
// it failed; a failed step does not stop the others or the next round. A
// round once begun runs to its end, bounded by roundTimeout: each step
// commits as it goes, so a round cut short would only leave its work to
// the next. moat serve runs it with an interval of an hour.
func (q *Quarantine) Maintain(ctx context.Context, interval time.Duration, digestFrom string, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		q.maintainRound(context.WithoutCancel(ctx), digestFrom, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maintainRound is one round of Maintain.
func (q *Quarantine) maintainRound(ctx context.Context, digestFrom string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	if n, err := q.Expire(ctx); err != nil {
		log.Error("quarantine expiry failed", "err", err)
	} else if n > 0 {
		log.Info("quarantine expired", "messages", n)
	}
	if *q.cfg.Digest {
		if n, err := q.SendDigests(ctx, digestFrom, q.cfg.DigestInterval); err != nil {
			log.Error("quarantine digest failed", "err", err)
		} else if n > 0 {
			log.Info("quarantine digests delivered", "users", n)
		}
	}
	if n, err := q.Tidy(ctx); err != nil {
		log.Error("quarantine tidying failed", "err", err)
	} else if n > 0 {
		log.Info("quarantine records of messages users deleted removed", "records", n)
	}
}
