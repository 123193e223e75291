package ops

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// needTool returns the path of an external program, or skips the test
// (fails it under CI=true, where .ci/run installs every tool).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install it (.ci/run)", name)
		}
		t.Skipf("%s is not installed: skipping", name)
	}
	return p
}

// TestRulesCheck runs promtool check rules on the rules file.
func TestRulesCheck(t *testing.T) {
	promtool := needTool(t, "promtool")
	out, err := exec.Command(promtool, "check", "rules", filepath.Join("prometheus", "moat.rules.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	want := len(RecordNames(Rules)) + len(AlertNames(Rules))
	if !strings.Contains(string(out), "SUCCESS: "+strconv.Itoa(want)+" rules found") {
		t.Errorf("promtool found other than the %d rules this test reads:\n%s", want, out)
	}
}

// TestRulesUnitTests runs the alerts' unit tests with promtool, and checks
// that every alert has a case where it fires.
func TestRulesUnitTests(t *testing.T) {
	promtool := needTool(t, "promtool")
	files := []string{"moat.rules.test.yml", "moat.rules.daily.test.yml"}
	cmd := exec.Command(promtool, append([]string{"test", "rules"}, files...)...)
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	var tests []byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("prometheus", f))
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, b...)
	}
	fires := map[string]bool{}
	// Each "- eval_time:" block names one alert and what it expects.
	for _, block := range strings.Split(string(tests), "- eval_time:")[1:] {
		name := ""
		for _, line := range strings.Split(block, "\n") {
			if f, ok := strings.CutPrefix(strings.TrimSpace(line), "alertname:"); ok {
				name = strings.TrimSpace(f)
			}
		}
		if strings.Contains(block, "exp_labels:") {
			fires[name] = true
		}
	}
	alerts := AlertNames(Rules)
	if len(alerts) < 9 {
		t.Fatalf("found %d alerts in the rules file, want at least 9: %v", len(alerts), alerts)
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("alert %s has no unit test where it fires", a)
		}
	}
}

// TestDashboard checks the dashboard's structure: it decodes, chooses its
// data source through the DS_PROMETHEUS variable, filters by gateway, and
// every panel queries Prometheus through that variable and says what a
// normal and an abnormal value look like.
func TestDashboard(t *testing.T) {
	b, err := ParseDashboard(Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	if b.UID == "" || b.Title == "" {
		t.Errorf("dashboard uid %q, title %q: both must be set", b.UID, b.Title)
	}
	vars := map[string]Variable{}
	for _, v := range b.Templating.List {
		vars[v.Name] = v
	}
	if ds := vars["DS_PROMETHEUS"]; ds.Type != "datasource" || ds.Query != "prometheus" {
		t.Errorf("templating variable DS_PROMETHEUS = %+v, want a datasource variable of type prometheus", ds)
	}
	if inst := vars["instance"]; inst.Type != "query" || inst.AllValue != ".*" {
		t.Errorf("templating variable instance = %+v, want a query variable with all value .*", inst)
	}
	ids := map[int]bool{}
	panels := 0
	for _, p := range b.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		panels++
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want prometheus ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if !strings.Contains(p.Description, "Normal:") || !strings.Contains(p.Description, "Abnormal:") {
			t.Errorf("panel %q: the description must say what is normal and abnormal: %q", p.Title, p.Description)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q query %s is empty", p.Title, q.RefID)
			}
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q query %s does not filter by the gateway variable: %s", p.Title, q.RefID, q.Expr)
			}
		}
	}
	if panels < 20 {
		t.Errorf("%d panels, want at least 20", panels)
	}
	// The live test (cmd/moat TestDashboardAgainstPrometheus) runs
	// Queries(): it must be every query of every panel.
	n := 0
	for _, p := range b.Panels {
		n += len(p.Targets)
	}
	if got := len(b.Queries()); got != n {
		t.Errorf("Queries returns %d queries, the panels hold %d", got, n)
	}
}

// TestOperationsDoc checks that docs/operations.md explains every alert.
func TestOperationsDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range AlertNames(Rules) {
		if !strings.Contains(string(doc), "### "+a) {
			t.Errorf("docs/operations.md has no section \"### %s\"", a)
		}
	}
}

// TestInstallAndUnit runs `make install` into a staging folder twice (the
// second must keep the edited configuration) and `systemd-analyze verify`
// on the installed unit, its binary path pointing at the installed
// binary. systemd-analyze verify works without a running systemd.
func TestInstallAndUnit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds moat")
	}
	mk := needTool(t, "make")
	analyze := needTool(t, "systemd-analyze")
	dest := t.TempDir()
	install := func() string {
		cmd := exec.Command(mk, "-s", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+filepath.Join(dest, "build", "moat"))
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	for _, f := range []string{"usr/bin/moat", "usr/lib/systemd/system/moat.service", "etc/moat/moat.toml", "etc/moat/moat.example.toml"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	conf := filepath.Join(dest, "etc", "moat", "moat.toml")
	if err := os.WriteFile(conf, []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := install(); !strings.Contains(out, "kept the existing") {
		t.Errorf("second make install: %q, want it to keep the configuration", out)
	}
	if b, _ := os.ReadFile(conf); string(b) != "# edited\n" {
		t.Errorf("make install overwrote the edited configuration: %q", b)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr", "lib", "systemd", "system", "moat.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/moat serve -config /etc/moat/moat.toml") {
		t.Errorf("installed unit does not run /usr/bin/moat:\n%s", unit)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=moat", "ProtectSystem=strict", "ProtectHome=yes",
		"PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE", "SystemCallFilter=@system-service", "RestrictAddressFamilies=",
		"ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// verify checks that the binaries exist: point them into the staging
	// folder.
	staged := filepath.Join(t.TempDir(), "moat.service")
	text := strings.ReplaceAll(string(unit), "/usr/bin/moat", filepath.Join(dest, "usr", "bin", "moat"))
	if err := os.WriteFile(staged, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", staged).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The installed binary runs.
	if out, err := exec.Command(filepath.Join(dest, "usr", "bin", "moat"), "version").CombinedOutput(); err != nil {
		t.Errorf("installed moat version: %v\n%s", err, out)
	}
}
