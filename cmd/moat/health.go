package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/moatmail/moat/gateway/metrics"
)

// readiness is what /readyz answers: ready once the store is open and
// every listener is up, not ready again from the moment moat stops.
type readiness struct {
	ready atomic.Bool
	// ping checks the store at each /readyz (the index answers a query).
	ping func(ctx context.Context) error
}

// healthTimeout bounds the store check of one /readyz.
const healthTimeout = 2 * time.Second

// handle adds /healthz and /readyz to mux. /healthz says the process
// serves HTTP (a liveness probe: restart it when this fails); /readyz says
// it takes mail: 200 when the store is open, every listener bound and the
// index answers, 503 with the reason otherwise (a readiness probe: send no
// traffic to it meanwhile). Both answer in plain text, as Kubernetes'
// probes and Prometheus' own endpoints do.
func (r *readiness) handle(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !r.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: starting or stopping\n"))
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), healthTimeout)
		defer cancel()
		if err := r.ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: store: " + err.Error() + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
}

// tlsListeners are the listeners that present the certificate: each gets
// its expiry exported.
var tlsListeners = []string{"smtp", "smtps", "imap", "imaps", "pop3", "pop3s"}

// watchOps wires what operators watch beside the mail flow into the
// metrics: the build, the certificate of every TLS listener that is on,
// the quarantine's size.
func (a *app) watchOps(tc *tls.Config) {
	a.metrics.SetBuildInfo(version, runtime.Version())
	for _, name := range tlsListeners {
		if a.listenAddr(name) != "" {
			a.metrics.SetCertificate(name, tc)
		}
	}
	a.metrics.WatchQuarantine(func(ctx context.Context) (metrics.QuarantineStats, error) {
		n, oldest, err := a.quar.Stats(ctx)
		return metrics.QuarantineStats{Messages: n, Oldest: oldest}, err
	})
}

// listenAddr is the configured address of a listener ("" when it is off).
func (a *app) listenAddr(name string) string {
	l := a.cfg.Listen
	return map[string]string{"smtp": l.SMTP, "smtps": l.SMTPS, "imap": l.IMAP, "imaps": l.IMAPS,
		"pop3": l.POP3, "pop3s": l.POP3S, "metrics": l.Metrics}[name]
}
