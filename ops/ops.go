// Package ops holds what operators install beside the binary: the Grafana
// dashboard (grafana/moat.json), the Prometheus rules
// (prometheus/moat.rules.yml, with their promtool unit tests) and the
// systemd unit (systemd/moat.service). docs/operations.md explains them.
//
// The Go side only embeds the dashboard and the rules and lists their
// queries, for the tests that check them against a real Prometheus
// scraping a real moat (cmd/moat/prometheus_test.go).
package ops

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Dashboard is the Grafana dashboard, importable as is.
//
//go:embed grafana/moat.json
var Dashboard []byte

// Rules are the Prometheus recording and alerting rules.
//
//go:embed prometheus/moat.rules.yml
var Rules []byte

// Query is one query of a dashboard panel.
type Query struct {
	Panel string // the panel's title
	RefID string
	Expr  string // as written, with the dashboard's variables
}

// Panel is a dashboard panel as the checks read it.
type Panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// Variable is a templating variable of the dashboard.
type Variable struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Query    any    `json:"query"`
	AllValue string `json:"allValue"`
}

// Board is the part of the dashboard the checks read.
type Board struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// ParseDashboard decodes the dashboard.
func ParseDashboard(raw []byte) (Board, error) {
	var b Board
	if err := json.Unmarshal(raw, &b); err != nil {
		return Board{}, fmt.Errorf("dashboard: %w", err)
	}
	return b, nil
}

// Queries returns every query of every panel, in the dashboard's order.
func (b Board) Queries() []Query {
	var qs []Query
	for _, p := range b.Panels {
		for _, t := range p.Targets {
			qs = append(qs, Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr})
		}
	}
	return qs
}

// Expand replaces the variables Grafana fills in a query (the instance
// selection, the rate interval, the time range) by values fit for
// querying Prometheus directly over window: every instance, rates over
// window.
func Expand(expr, window string) string {
	return strings.NewReplacer(
		"$__rate_interval", window,
		"$__range", window,
		"$__interval", window,
		`"$instance"`, `".*"`,
	).Replace(expr)
}

var recordRE = regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`)
var alertRE = regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`)

// RecordNames returns the names of the recording rules in rules.
func RecordNames(rules []byte) []string { return submatches(recordRE, rules) }

// AlertNames returns the names of the alerts in rules.
func AlertNames(rules []byte) []string { return submatches(alertRE, rules) }

func submatches(re *regexp.Regexp, b []byte) []string {
	var out []string
	for _, m := range re.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	return out
}
