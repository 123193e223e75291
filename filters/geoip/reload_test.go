package geoip

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/geoip/geoiptest"
)

// reloading is a filter over both test databases whose clock the test
// moves, with its log in a buffer.
type reloading struct {
	*Filter
	country, asn string
	clock        time.Time
	log          bytes.Buffer
}

// newReloading builds the filter with reload_interval 1m.
func newReloading(t *testing.T) *reloading {
	t.Helper()
	r := &reloading{clock: time.Unix(1_700_000_000, 0)}
	r.country, r.asn = writeDBs(t)
	f, err := New(Config{CountryDB: r.country, ASNDB: r.asn, ReloadInterval: time.Minute},
		Options{Log: slog.New(slog.NewTextHandler(&r.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.now = func() time.Time { return r.clock }
	f.nextReload.Store(r.clock.Add(time.Minute).UnixNano())
	r.Filter = f
	return r
}

// countryOf looks up ip and returns the country fact.
func (r *reloading) countryOf(t *testing.T, ip string) string {
	t.Helper()
	return factOf(t, r.Filter, ip, FactCountry)
}

// replace puts content over path by a rename, as geoipupdate does.
func replace(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadReplacedFile(t *testing.T) {
	r := newReloading(t)
	if got := r.countryOf(t, "192.0.2.1"); got != "DE" {
		t.Fatalf("before: %q, want DE", got)
	}
	geoiptest.WriteCountryDB(t, r.country, map[string]string{"192.0.2.0/24": "NL"})

	steps := []struct {
		advance time.Duration
		want    string
	}{
		{0, "DE"},                // not looked at yet
		{59 * time.Second, "DE"}, // still within the interval
		{time.Second, "NL"},      // the interval passed: replaced
		{2 * time.Minute, "NL"},  // nothing changed since
	}
	for i, s := range steps {
		r.clock = r.clock.Add(s.advance)
		if got := r.countryOf(t, "192.0.2.1"); got != s.want {
			t.Errorf("step %d (+%v): %q, want %q", i, s.advance, got, s.want)
		}
	}
	if got := r.countryOf(t, "198.51.100.7"); got != "" {
		t.Errorf("a network only the old file had: %q, want none", got)
	}
	if got := factOf(t, r.Filter, "192.0.2.1", FactASN); got != "64496" {
		t.Errorf("the unchanged AS database: %q, want 64496", got)
	}
	if n := strings.Count(r.log.String(), "geoip database reloaded"); n != 1 {
		t.Errorf("%d reload lines, want 1:\n%s", n, r.log.String())
	}
	if !strings.Contains(r.log.String(), "key=country_db") {
		t.Errorf("the reload line names no key:\n%s", r.log.String())
	}
}

func TestReloadKeepsOldOnBrokenFile(t *testing.T) {
	r := newReloading(t)
	good, err := os.ReadFile(r.country)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
	}{
		{"cut short", good[:len(good)/2]},
		{"not a database", []byte("<html>rate limited</html>")},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.log.Reset()
			replace(t, r.country, tt.content)
			r.clock = r.clock.Add(time.Minute)
			if got := r.countryOf(t, "192.0.2.1"); got != "DE" {
				t.Errorf("after a broken replacement: %q, want the old DE", got)
			}
			if n := strings.Count(r.log.String(), "geoip database not reloaded"); n != 1 || !strings.Contains(r.log.String(), r.country) {
				t.Errorf("want one error line naming the file, got:\n%s", r.log.String())
			}
			// Reported once per version of the file.
			r.clock = r.clock.Add(time.Minute)
			r.countryOf(t, "192.0.2.1")
			if n := strings.Count(r.log.String(), "not reloaded"); n != 1 {
				t.Errorf("%d error lines after another interval, want 1", n)
			}
			if err := r.Reload(); err != nil {
				t.Errorf("Reload of the refused version again: %v", err)
			}
		})
	}

	geoiptest.WriteCountryDB(t, r.country, map[string]string{"192.0.2.0/24": "NL"})
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload of a good file: %v", err)
	}
	if got := r.countryOf(t, "192.0.2.1"); got != "NL" {
		t.Errorf("after a good replacement: %q, want NL", got)
	}
}

func TestReloadWrongKind(t *testing.T) {
	r := newReloading(t)
	geoiptest.WriteASNDB(t, r.country, systems) // an ASN database where the country one was
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), "geoip: country_db: "+r.country+": not a database of this kind") {
		t.Errorf("Reload: %v, want the wrong kind refused", err)
	}
	if got := r.countryOf(t, "192.0.2.1"); got != "DE" {
		t.Errorf("%q, want the old DE", got)
	}
}

func TestReloadMissingFile(t *testing.T) {
	r := newReloading(t)
	if err := os.Remove(r.asn); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "asn_db") {
		t.Errorf("Reload: %v, want the missing asn_db reported", err)
	}
	if err := r.Reload(); err != nil {
		t.Errorf("Reload again: %v, want the missing file reported once", err)
	}
	if got := factOf(t, r.Filter, "192.0.2.1", FactASN); got != "64496" {
		t.Errorf("AS %q, want the loaded 64496", got)
	}
	geoiptest.WriteASNDB(t, r.asn, map[string]geoiptest.ASN{"192.0.2.0/24": {Number: 65551}})
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := factOf(t, r.Filter, "192.0.2.1", FactASN); got != "65551" {
		t.Errorf("AS %q, want the new file's 65551", got)
	}
}

func TestReloadIntervalZero(t *testing.T) {
	country, _ := writeDBs(t)
	f := newFilter(t, Config{CountryDB: country}) // reload_interval 0
	geoiptest.WriteCountryDB(t, country, map[string]string{"192.0.2.0/24": "NL"})
	f.now = func() time.Time { return time.Now().Add(24 * time.Hour) }
	if got := factOf(t, f, "192.0.2.1", FactCountry); got != "DE" {
		t.Errorf("%q: a lookup reloaded with reload_interval 0", got)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := factOf(t, f, "192.0.2.1", FactCountry); got != "NL" {
		t.Errorf("after Reload: %q, want NL", got)
	}
}

// The old reader is closed when the last lookup using it ends, not
// before.
func TestOldReaderClosedAfterLookups(t *testing.T) {
	r := newReloading(t)
	inFlight := r.Filter.country.acquire()
	geoiptest.WriteCountryDB(t, r.country, map[string]string{"192.0.2.0/24": "NL"})
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if inFlight.closed.Load() {
		t.Fatal("the old reader was closed under a running lookup")
	}
	if rec, err := inFlight.r.Country(netip.MustParseAddr("192.0.2.1")); err != nil || rec.Country.ISOCode != "DE" {
		t.Fatalf("the running lookup on the old reader: %v, %v", rec, err)
	}
	if got := r.countryOf(t, "192.0.2.1"); got != "NL" {
		t.Errorf("a new lookup: %q, want NL", got)
	}
	inFlight.release()
	if !inFlight.closed.Load() {
		t.Error("the old reader is still open after its last lookup")
	}
	if inFlight.tryRef() {
		t.Error("a closed reader handed out again")
	}
}

func TestClose(t *testing.T) {
	r := newReloading(t)
	inFlight := r.Filter.asn.acquire()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if inFlight.closed.Load() {
		t.Fatal("Close closed a reader under a running lookup")
	}
	inFlight.release()
	if !inFlight.closed.Load() {
		t.Error("the reader is still open after Close and its last lookup")
	}
	if res := mustCheck(t, r.Filter, "192.0.2.1"); !res.IsZero() {
		t.Errorf("after Close: %+v, want nothing", res)
	}
	if dbs := r.Databases(); len(dbs) != 0 {
		t.Errorf("after Close: Databases() = %v", dbs)
	}
	geoiptest.WriteCountryDB(t, r.country, map[string]string{"192.0.2.0/24": "NL"})
	if err := r.Reload(); err != nil || len(r.Databases()) != 0 {
		t.Errorf("Reload after Close: %v, %v; want nothing reopened", err, r.Databases())
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Lookups run while the file is replaced again and again, and reloaded
// both by Reload and by the lookups themselves; run with -race.
func TestConcurrentReload(t *testing.T) {
	country, asn := writeDBs(t)
	var log bytes.Buffer
	f, err := New(Config{CountryDB: country, ASNDB: asn, ReloadInterval: time.Nanosecond},
		Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	stop := make(chan struct{})
	errs := make(chan string, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					if n == 0 {
						errs <- "a worker made no lookup"
					}
					return
				default:
				}
				res, err := check(f, "192.0.2.1")
				if err != nil {
					errs <- err.Error()
					return
				}
				if c := res.Fact(FactCountry); c != "DE" && c != "NL" {
					errs <- "country " + c
					return
				}
				if res.Fact(FactASN) != "64496" {
					errs <- "AS " + res.Fact(FactASN)
					return
				}
			}
		})
	}
	for i := range 30 {
		geoiptest.WriteCountryDB(t, country, map[string]string{"192.0.2.0/24": []string{"NL", "DE"}[i%2]})
		if err := f.Reload(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := factOf(t, f, "192.0.2.1", FactCountry); got != "DE" {
		t.Errorf("after the last replacement: %q, want DE", got)
	}
	if strings.Contains(log.String(), "not reloaded") {
		t.Errorf("a good file was refused:\n%s", log.String())
	}
}
