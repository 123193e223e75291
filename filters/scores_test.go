package filters

import (
	"math"
	"strings"
	"testing"
)

func TestValidateScores(t *testing.T) {
	type table struct {
		A float64 `toml:"a_score"`
		B float64 `toml:"b_score"`
		N int     `toml:"limit"`
	}
	for _, tc := range []struct {
		cfg  any
		want string // "" for no error
	}{
		{table{A: 1, B: -2.5}, ""},
		{&table{A: 1}, ""},
		{table{A: 1, B: math.NaN()}, "b_score: NaN is not a finite number"},
		{table{A: math.Inf(1)}, "a_score: +Inf is not a finite number"},
		{42, "is not a struct"},
	} {
		err := ValidateScores(tc.cfg)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidateScores(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
