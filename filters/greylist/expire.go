package greylist

import (
	"context"
	"time"
)

// RunExpiry removes the expired records of st every interval (at once
// first) until ctx ends, and returns ctx's error. Each run is reported to
// opt.Observer; a failed run is tried again at the next interval. The
// check ignores expired records whether or not they have been removed,
// so expiry only bounds the size of the store.
//
// cmd/moat runs it in a goroutine beside the server, with
// Config.ExpireInterval, for the store it opened.
func RunExpiry(ctx context.Context, st Store, interval time.Duration, opt Options) error {
	opt = opt.withDefaults()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := st.Expire(ctx, opt.Now())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		opt.Observer.Expired(n, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
