package filters

import (
	"fmt"
	"math"
	"reflect"
)

// ValidateScores checks a filter's score table: a struct whose float64
// fields are symbol scores with TOML tags. It reports the first score that
// is not a finite number, named by its TOML key. Fields of other types are
// left to the filter's own checks.
func ValidateScores(cfg any) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("score table of type %T is not a struct", cfg)
	}
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Float64 {
			continue
		}
		if s := f.Float(); math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("%s: %v is not a finite number", v.Type().Field(i).Tag.Get("toml"), s)
		}
	}
	return nil
}
