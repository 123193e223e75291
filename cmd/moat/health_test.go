package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestHealthAndDecisionLine: /healthz and /readyz answer on the metrics
// listener of a started moat, /readyz says 503 once moat stops, and the
// decision line of a quarantined message names its Message-ID and the
// quarantine id that `moat quarantine` knows it by.
func TestHealthAndDecisionLine(t *testing.T) {
	cfg, err := parseConfig(testConfig(t.TempDir(), e2ePolicies), "test")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	a, err := start(cfg, slog.New(slog.NewTextHandler(&logs, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		resp, err := http.Get("http://" + a.Addr("metrics") + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}

	if _, err := a.store.AddUser(t.Context(), "quarantine@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	msg := "From: <bob@example.net>\r\nTo: <quarantine@example.com>\r\nSubject: spam\r\n" +
		"Message-ID: <where-is-it@example.net>\r\n\r\n" + gtubeString + "\r\n"
	if r := send(t, a.Addr("smtp"), clientTLS(t, cfg.DataDir), "bob@example.net", []string{"quarantine@example.com"}, msg); r.code != 250 {
		t.Fatalf("GTUBE to quarantine@: %v", r)
	}
	entries, err := a.quar.List(t.Context(), "")
	if err != nil || len(entries) != 1 {
		t.Fatalf("quarantine list: %v, %d entries", err, len(entries))
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "msg=message ") {
			line = l
		}
	}
	want := regexp.MustCompile(`queue=\S+ message_id=<where-is-it@example.net> quarantine_id=` +
		strconv.FormatInt(entries[0].ID, 10) + ` .* action=quarantine .*reply=250`)
	if !want.MatchString(line) {
		t.Errorf("decision line %q does not match %v", line, want)
	}

	// Not ready while stopping; the handler says why.
	a.health.ready.Store(false)
	rec := httptest.NewRecorder()
	mux := http.NewServeMux()
	a.health.handle(mux)
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while stopping: %d, want 503", rec.Code)
	}
	// Ready again, but the index does not answer.
	a.health.ready.Store(true)
	down := readiness{ping: func(context.Context) error { return errors.New("disk gone") }}
	down.ready.Store(true)
	mux = http.NewServeMux()
	down.handle(mux)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "disk gone") {
		t.Errorf("/readyz with the index failing: %d %q, want 503 naming the error", rec.Code, rec.Body.String())
	}
}
