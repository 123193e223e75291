// Package antivirus is a data-stage filter that has clamd (ClamAV's
// daemon) scan every message, through clamd's INSTREAM command over a unix
// socket or TCP.
//
// The raw message goes to clamd as received: clamd decodes MIME (base64,
// quoted-printable, nested messages, archives) itself, so the filter does
// not use the content package's decoded view.
//
// The filter only reports. A virus is the symbol VIRUS, with score 0 by
// default, and a rule decides what happens to it (a score would not do:
// a policy's reject threshold would turn a rule's quarantine into a
// rejection, since the verdict is the most severe of the two); the
// SMTP reply for a refused virus should be 554 5.7.0 (RFC 3463 §3.8:
// X.7.0, other or undefined security status), which is the gateway's to
// send. A clamd that cannot be reached, is too slow or fails is an error
// from Check: the pipeline turns it into ANTIVIRUS_TEMPFAIL, and the
// configuration must say on_error = "tempfail" so that the message is
// deferred (451 4.7.1) rather than let through unscanned:
//
//	[filters.antivirus]
//	address = "unix:/run/clamav/clamd.ctl"
//
//	[rules.filters.antivirus]
//	timeout = "30s"
//	on_error = "tempfail"           # required: never accept unscanned mail
//
//	[[rules.rule]]
//	name = "VIRUS_REJECT"
//	expr = 'has("VIRUS")'
//	action = "reject"               # or "quarantine"
//	reason = "virus found by clamd"
package antivirus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/moatmail/moat/filters"
)

// The symbol names the filter returns.
const (
	// SymVirus is returned when clamd finds a signature; its reason is the
	// signature name.
	SymVirus = "VIRUS"
	// SymSkippedSize is returned, with score 0, when a message was not
	// scanned because of its size: over Config.MaxScanBytes (clamd is not
	// contacted), or over clamd's own StreamMaxLength. A policy that wants
	// big mail held can match it with a rule.
	SymSkippedSize = "AV_SKIPPED_SIZE"
)

// Symbols lists every symbol name the filter can return.
var Symbols = []string{SymVirus, SymSkippedSize}

// Defaults of Config.
const (
	// DefaultAddress is where Debian's clamav-daemon listens.
	DefaultAddress = "unix:/run/clamav/clamd.ctl"
	// DefaultMaxScanBytes is 25 MiB, the StreamMaxLength of Debian's
	// clamd.conf.
	DefaultMaxScanBytes = 25 << 20
	// DefaultVirusScore is 0: the rule acting on VIRUS decides, not the
	// score (see the package comment).
	DefaultVirusScore = 0
)

// Config configures the filter, under [filters.antivirus]. Start from
// DefaultConfig.
//
//	address        = "unix:/run/clamav/clamd.ctl"  # or "tcp:127.0.0.1:3310"
//	max_scan_bytes = 26214400                      # 25 MiB
//	virus_score    = 0.0
//
// The deadline of a scan is the pipeline's per-filter timeout
// ([rules.filters.antivirus] timeout), not a key of this section.
type Config struct {
	// Address of clamd: "unix:/path" for a local socket (clamd.conf
	// LocalSocket) or "tcp:host:port" (TCPAddr, TCPSocket).
	Address string `toml:"address"`
	// MaxScanBytes is the largest message sent to clamd; a larger one is
	// not sent and gets AV_SKIPPED_SIZE. Keep it at or below clamd's
	// StreamMaxLength, or clamd refuses what lies between (that too gives
	// AV_SKIPPED_SIZE, after sending up to the limit).
	MaxScanBytes int64 `toml:"max_scan_bytes"`
	// VirusScore is the score of VIRUS. Above a policy's reject
	// threshold, it rejects a virus whatever the rule acting on VIRUS
	// says.
	VirusScore float64 `toml:"virus_score"`
}

// DefaultConfig returns the configuration documented on Config.
func DefaultConfig() Config {
	return Config{
		Address:      DefaultAddress,
		MaxScanBytes: DefaultMaxScanBytes,
		VirusScore:   DefaultVirusScore,
	}
}

// Validate checks the configuration without changing it; several errors
// are joined, each starting with its key.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := ParseAddress(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("address: %w", err))
	}
	if c.MaxScanBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_scan_bytes: %d is not a positive number of bytes", c.MaxScanBytes))
	}
	if math.IsNaN(c.VirusScore) || math.IsInf(c.VirusScore, 0) {
		errs = append(errs, fmt.Errorf("virus_score: %v is not a finite number", c.VirusScore))
	} else if c.VirusScore < 0 {
		errs = append(errs, fmt.Errorf("virus_score: %v is negative (a virus would count as ham)", c.VirusScore))
	}
	return errors.Join(errs...)
}

// Filter is the antivirus check, a data-stage filter. It is safe for
// concurrent use.
type Filter struct {
	cfg   Config
	clamd *Clamd
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// New returns the filter. It does not connect to clamd: a clamd that is
// down at start is found at the first message, and defers it.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("antivirus config: %w", err)
	}
	c, err := NewClamd(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("antivirus config: %w", err)
	}
	return &Filter{cfg: cfg, clamd: c}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "antivirus" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return Symbols }

// errNoMessage means the pipeline ran the filter before DATA.
var errNoMessage = errors.New("antivirus: no message (not at the data stage)")

// Check implements filters.Filter: it sends the raw message to clamd under
// ctx's deadline. Clean gives no symbol, a virus gives VIRUS, a message too
// big to scan gives AV_SKIPPED_SIZE, and anything else (clamd down, slow,
// or answering ERROR) is an error, never a clean verdict.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errNoMessage
	}
	raw := in.Msg.Raw
	if n := int64(len(raw)); n > f.cfg.MaxScanBytes {
		return filters.Result{Symbols: []filters.Symbol{{
			Name:   SymSkippedSize,
			Reason: "not scanned: " + strconv.FormatInt(n, 10) + " bytes, over max_scan_bytes " + strconv.FormatInt(f.cfg.MaxScanBytes, 10),
		}}}, nil
	}
	res, err := f.clamd.Scan(ctx, raw)
	if err != nil {
		return filters.Result{}, fmt.Errorf("antivirus: %w", err)
	}
	switch res.Status {
	case StatusClean:
		return filters.Result{}, nil
	case StatusInfected:
		return filters.Result{Symbols: []filters.Symbol{{Name: SymVirus, Score: f.cfg.VirusScore, Reason: SignatureReason(res.Signature)}}}, nil
	case StatusSizeLimit:
		return filters.Result{Symbols: []filters.Symbol{{
			Name:   SymSkippedSize,
			Reason: "not scanned: " + strconv.Itoa(len(raw)) + " bytes, over clamd's StreamMaxLength",
		}}}, nil
	}
	return filters.Result{}, fmt.Errorf("antivirus: clamd %s: unknown status %v", f.clamd, res.Status)
}

// maxSignatureLen bounds the signature name in a reason; ClamAV's own
// names are far shorter.
const maxSignatureLen = 100

// SignatureReason makes a signature name from clamd safe for a reason (a
// log field, the quarantine): letters, digits and . _ - + : / ( ) are
// kept, every other byte becomes '_', and the name is cut at 100 bytes.
func SignatureReason(name string) string {
	b := make([]byte, 0, min(len(name), maxSignatureLen))
	for i := 0; i < len(name) && len(b) < maxSignatureLen; i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-', c == '+', c == ':', c == '/', c == '(', c == ')':
		default:
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return "unnamed signature"
	}
	return string(b)
}
