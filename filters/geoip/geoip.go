// Package geoip is a connect-stage filter that looks the client address up
// in MaxMind DB files (github.com/oschwald/geoip2-golang): the country in a
// GeoIP2 or GeoLite2 Country (or City) database, the autonomous system in
// a GeoLite2-ASN (or GeoIP2-ISP) database. What it finds becomes facts for
// rules and later checks; a score configured for the country or the AS
// becomes a symbol. Nothing scores by default: where mail comes from is a
// local judgement.
//
// Either database may be left out, and both may: the filter then finds
// nothing. A database replaced on disk (geoipupdate renames the new file
// over the old one) is read again by the next lookup after
// reload_interval; a broken replacement is reported and the loaded version
// stays.
package geoip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"

	"github.com/moatmail/moat/filters"
)

// The facts the filter sets at the connect stage. A fact is set only when
// its database holds the address.
const (
	// FactCountry is the client's country, an ISO 3166-1 alpha-2 code in
	// upper case ("DE"): the database's country, or its registered
	// country when it has no other.
	FactCountry = "geoip.country"
	// FactASN is the client's autonomous system number, in decimal
	// ("64496").
	FactASN = "geoip.asn"
	// FactASNOrg is the organisation holding that autonomous system, as
	// the database names it.
	FactASNOrg = "geoip.asn_org"
)

// The symbol names the filter returns.
const (
	// SymCountry: the client's country has a score in country_scores.
	SymCountry = "GEOIP_COUNTRY"
	// SymASN: the client's autonomous system has a score in asn_scores.
	SymASN = "GEOIP_ASN"
)

// Config configures the filter. Start from DefaultConfig.
type Config struct {
	// CountryDB is the path of a GeoIP2/GeoLite2 Country or City
	// database (TOML country_db); empty: no country lookup.
	CountryDB string `toml:"country_db"`
	// ASNDB is the path of a GeoLite2-ASN (or GeoIP2-ISP) database (TOML
	// asn_db); empty: no AS lookup.
	ASNDB string `toml:"asn_db"`
	// ReloadInterval is how often, at most, a lookup looks whether a
	// database file was replaced (TOML reload_interval, default 1m); 0
	// reads the files once, at start.
	ReloadInterval time.Duration `toml:"reload_interval"`
	// CountryScores scores clients by country: ISO 3166-1 alpha-2 code
	// in upper case to the score of GEOIP_COUNTRY (TOML country_scores,
	// default none).
	CountryScores map[string]float64 `toml:"country_scores"`
	// ASNScores scores clients by autonomous system: AS number in
	// decimal to the score of GEOIP_ASN (TOML asn_scores, default none).
	ASNScores map[string]float64 `toml:"asn_scores"`
}

// DefaultReloadInterval is the default of Config.ReloadInterval.
const DefaultReloadInterval = time.Minute

// DefaultConfig returns the configuration used when the file sets nothing:
// no database, so no lookup.
func DefaultConfig() Config {
	return Config{ReloadInterval: DefaultReloadInterval}
}

// Validate reports the first invalid field, named by its TOML key (map
// entries in key order).
func (c Config) Validate() error {
	if c.ReloadInterval < 0 {
		return fmt.Errorf("reload_interval: %v is negative", c.ReloadInterval)
	}
	if err := validateScores("country_scores", "country_db", c.CountryDB, c.CountryScores, isCountryCode,
		"an ISO 3166-1 alpha-2 country code in upper case, such as \"DE\""); err != nil {
		return err
	}
	return validateScores("asn_scores", "asn_db", c.ASNDB, c.ASNScores, isASN,
		"an AS number in decimal, 1 to 4294967295, such as \"64496\"")
}

// validateScores checks the score map of key: every name valid, every
// score finite, and a database to look them up in.
func validateScores(key, dbKey, db string, scores map[string]float64, valid func(string) bool, want string) error {
	if len(scores) > 0 && db == "" {
		return fmt.Errorf("%s: set, but %s is empty", key, dbKey)
	}
	for _, name := range slices.Sorted(maps.Keys(scores)) {
		if !valid(name) {
			return fmt.Errorf("%s: %q is not %s", key, name, want)
		}
		if s := scores[name]; math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("%s.%s: %v is not a finite number", key, name, s)
		}
	}
	return nil
}

// isCountryCode reports whether s is two upper-case ASCII letters, the
// form of ISO 3166-1 alpha-2 codes in MaxMind's databases.
func isCountryCode(s string) bool {
	return len(s) == 2 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z'
}

// isASN reports whether s is an AS number in canonical decimal. AS 0 is
// reserved (RFC 7607) and never found.
func isASN(s string) bool {
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n > 0 && strconv.FormatUint(n, 10) == s
}

// Options are what the filter needs besides its configuration.
type Options struct {
	// Log receives a line for each database reloaded or refused after
	// start; nil is slog.Default().
	Log *slog.Logger
}

// Filter is the GeoIP check. It is safe for concurrent use.
type Filter struct {
	cfg Config
	// countryScores and asnScores are the symbols of the configured
	// scores, by ISO code and by AS number, made once.
	countryScores map[string]filters.Symbol
	asnScores     map[string]filters.Symbol
	log           *slog.Logger
	country       *database // nil without country_db
	asn           *database // nil without asn_db
	dbs           []*database

	// nextReload is when, in Unix nanoseconds, a lookup next looks at
	// the files; the lookup that moves it does so.
	nextReload atomic.Int64
	now        func() time.Time
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// New opens the configured databases. A database that is configured but
// missing, unreadable or of the wrong kind is an error. Call Close when
// the filter is no longer used; Databases says what was loaded.
func New(cfg Config, opts Options) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("geoip config: %w", err)
	}
	f := &Filter{cfg: cfg, log: cmp.Or(opts.Log, slog.Default()), now: time.Now,
		countryScores: symbols(SymCountry, "country ", cfg.CountryScores),
		asnScores:     symbols(SymASN, "AS", cfg.ASNScores)}
	if cfg.CountryDB != "" {
		f.country = &database{key: "country_db", path: cfg.CountryDB, probe: probeCountry}
		f.dbs = append(f.dbs, f.country)
	}
	if cfg.ASNDB != "" {
		f.asn = &database{key: "asn_db", path: cfg.ASNDB, probe: probeASN}
		f.dbs = append(f.dbs, f.asn)
	}
	for _, d := range f.dbs {
		if err := d.open(); err != nil {
			f.Close()
			return nil, fmt.Errorf("geoip: %w", err)
		}
	}
	f.nextReload.Store(f.now().Add(cfg.ReloadInterval).UnixNano())
	return f, nil
}

// symbols makes the symbol of each scored name, its reason prefix+name.
func symbols(sym, prefix string, scores map[string]float64) map[string]filters.Symbol {
	out := make(map[string]filters.Symbol, len(scores))
	for name, s := range scores {
		out[name] = filters.Symbol{Name: sym, Score: s, Reason: prefix + name}
	}
	return out
}

// Databases returns the databases loaded now, country first; none when
// no database is configured (the filter then finds nothing), which the
// caller may log as "no GeoIP database configured".
func (f *Filter) Databases() []Database {
	var out []Database
	for _, d := range f.dbs {
		if h := d.acquire(); h != nil {
			out = append(out, h.info)
			h.release()
		}
	}
	return out
}

// Reload reads every database file that changed since it was last read,
// now, and reports what it could not read (once per version of a file;
// the loaded version stays). Lookups call it every reload_interval; a
// caller may call it at any time.
func (f *Filter) Reload() error {
	var errs []error
	for _, d := range f.dbs {
		loaded, err := d.reload()
		if err != nil {
			errs = append(errs, fmt.Errorf("geoip: %w", err))
		} else if loaded != nil {
			f.log.Info("geoip database reloaded", "key", loaded.Key, "path", loaded.Path,
				"type", loaded.Type, "built", loaded.Built)
		}
	}
	return errors.Join(errs...)
}

// Close releases the databases: each is closed once the lookups running
// now finish, and later lookups find nothing. It is safe to call while
// sessions still use the filter, and more than once.
func (f *Filter) Close() error {
	for _, d := range f.dbs {
		d.close()
	}
	return nil
}

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return []string{SymCountry, SymASN} }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "geoip" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageConnect }

// Check implements filters.Filter. Every address is looked up, loopback
// and private ones too (real databases do not hold them; a test's
// database may). A record the database cannot decode is an error: the
// pipeline makes it GEOIP_TEMPFAIL.
func (f *Filter) Check(_ context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Conn == nil || !in.Conn.RemoteIP.IsValid() {
		return filters.Result{}, errors.New("geoip: no client address")
	}
	f.reloadIfDue()
	ip := in.Conn.RemoteIP.Unmap().WithZone("")
	var res filters.Result // its slices made to size at the first finding
	country, err := lookup(f.country, ip, (*geoip2.Reader).Country)
	if err != nil {
		return filters.Result{}, fmt.Errorf("geoip: country of %s: %w", ip, err)
	}
	if country != nil {
		if code := cmp.Or(country.Country.ISOCode, country.RegisteredCountry.ISOCode); code != "" {
			res.Facts = append(make([]filters.Fact, 0, 3), filters.Fact{Name: FactCountry, Value: code})
			if sym, ok := f.countryScores[code]; ok {
				res.Symbols = append(make([]filters.Symbol, 0, 2), sym)
			}
		}
	}
	as, err := lookup(f.asn, ip, (*geoip2.Reader).ASN)
	if err != nil {
		return filters.Result{}, fmt.Errorf("geoip: AS of %s: %w", ip, err)
	}
	if as != nil && as.AutonomousSystemNumber != 0 {
		num := strconv.FormatUint(uint64(as.AutonomousSystemNumber), 10)
		res.Facts = append(slices.Grow(res.Facts, 2), filters.Fact{Name: FactASN, Value: num})
		if org := as.AutonomousSystemOrganization; org != "" {
			res.Facts = append(res.Facts, filters.Fact{Name: FactASNOrg, Value: org})
		}
		if sym, ok := f.asnScores[num]; ok {
			res.Symbols = append(slices.Grow(res.Symbols, 1), sym)
		}
	}
	return res, nil
}

// reloadIfDue runs Reload when reload_interval has passed since the last
// look, in the one lookup that claims the turn; the others go on with the
// loaded versions.
func (f *Filter) reloadIfDue() {
	if f.cfg.ReloadInterval <= 0 || len(f.dbs) == 0 {
		return
	}
	now := f.now()
	next := f.nextReload.Load()
	if now.UnixNano() < next || !f.nextReload.CompareAndSwap(next, now.Add(f.cfg.ReloadInterval).UnixNano()) {
		return
	}
	if err := f.Reload(); err != nil {
		f.log.Error("geoip database not reloaded", "err", err)
	}
}
