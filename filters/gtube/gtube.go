// Package gtube finds the GTUBE test string in a message body, so that an
// operator can check end to end that spam is caught: a message carrying it
// scores high enough to be rejected or quarantined by any sane policy.
//
// As in SpamAssassin, the string must sit whole on one line. It is looked
// for in the raw body as received: a body whose transfer encoding
// (base64, quoted-printable) hides it is not decoded.
package gtube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/moatmail/moat/filters"
)

// String is the GTUBE test string ("Generic Test for Unsolicited Bulk
// Email"), https://spamassassin.apache.org/gtube/.
const String = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// Symbol is the name of the symbol returned when the string is found.
const Symbol = "GTUBE"

// gtube is String as bytes, made once.
var gtube = []byte(String)

// Config configures the filter. Start from DefaultConfig.
type Config struct {
	// Score of the GTUBE symbol (TOML score, default 1000): far above any
	// reject threshold.
	Score float64 `toml:"score"`
}

// DefaultScore is the default of Config.Score.
const DefaultScore = 1000

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config { return Config{Score: DefaultScore} }

// Validate reports an unusable score.
func (c Config) Validate() error {
	if math.IsNaN(c.Score) || math.IsInf(c.Score, 0) {
		return fmt.Errorf("score: %v is not a finite number", c.Score)
	}
	return nil
}

// Filter is the GTUBE check, a data-stage filter.
type Filter struct {
	score float64
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gtube config: %w", err)
	}
	return &Filter{score: cfg.Score}, nil
}

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return []string{Symbol} }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "gtube" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// errNoMessage means the pipeline ran the filter before DATA.
var errNoMessage = errors.New("gtube: no message (not at the data stage)")

// Check implements filters.Filter. String holds no CR or LF, so any match
// lies on one line.
func (f *Filter) Check(_ context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errNoMessage
	}
	if !bytes.Contains(in.Msg.Body(), gtube) {
		return filters.Result{}, nil
	}
	return filters.Result{Symbols: []filters.Symbol{{Name: Symbol, Score: f.score, Reason: "GTUBE test string"}}}, nil
}
