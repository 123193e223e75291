#!/usr/bin/env bash
# mailboxbench.sh: what a large mailbox costs moat and Dovecot, side by side,
# with one client (scripts/mailboxbench): SELECT (first and warm), FETCH of
# the last 10 messages, SEARCH SUBJECT (first and warm), SEARCH BODY, and
# the memory of each additional connection with INBOX selected.
#
#   scripts/mailboxbench.sh [-sizes "1000 10000 100000"] [-msg-size 10240]
#                           [-moat ./moat] [-bench BIN] [-runs 10] [-no-dovecot] [-label L]
#
# As root (Dovecot needs a system user). For each size the shared harness
# (../shared/bench/mail_fetch.py gen, or $MAIL_FETCH) writes a Maildir;
# mailboxbench fill puts the same messages in a fresh moat data_dir through
# the store API; moat serves it on a loopback port; a private Dovecot (set
# up as ../shared/bench/dovecot_fetch.sh does) serves the Maildir. Every
# process started here is stopped by pid. Prints one JSON line per server
# and size, then a table.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="1000 10000 100000" MSG_SIZE=10240 MOAT=./moat BENCH="" RUNS=10 DOVECOT=1 LABEL=moat
MAIL_FETCH=${MAIL_FETCH:-../shared/bench/mail_fetch.py}
while [ $# -gt 0 ]; do
  case "$1" in
    -sizes) SIZES=$2; shift ;;
    -msg-size) MSG_SIZE=$2; shift ;;
    -moat) MOAT=$2; shift ;;
    -bench) BENCH=$2; shift ;;
    -runs) RUNS=$2; shift ;;
    -no-dovecot) DOVECOT=0 ;;
    -label) LABEL=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "run as root (Dovecot needs a system user)" >&2; exit 1; }
[ -f "$MAIL_FETCH" ] || { echo "no $MAIL_FETCH (set MAIL_FETCH)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/mailboxbench.XXXXXX)
chmod 755 "$work"
pids=() created=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work" /run/mailboxbench-dovecot
  [ -n "$created" ] && userdel "$created" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$MOAT" ] || go build -o "$MOAT" ./cmd/moat
[ -n "$BENCH" ] || { BENCH=$work/mailboxbench; go build -o "$BENCH" ./scripts/mailboxbench; }
account=mailbench
if ! id "$account" >/dev/null 2>&1; then
  useradd -M -d /nonexistent -s /usr/sbin/nologin "$account"; created=$account
fi
VUID=$(id -u $account) VGID=$(id -g $account)
USER_NAME=user@example.test PASSWORD=bench-password
results=$work/results.jsonl

wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1" >&2; return 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

for n in $SIZES; do
  home=$work/home-$n
  install -d -o "$VUID" -g "$VGID" -m 700 "$home"
  echo "== $n messages: generating" >&2
  python3 "$MAIL_FETCH" gen "$home/Maildir" --count "$n" --size "$MSG_SIZE" --rcpt "$USER_NAME" \
    --uid "$VUID" --gid "$VGID" >&2

  # ---- moat
  data=$work/moat-$n port=$((30000 + RANDOM % 10000))
  "$BENCH" fill -data "$data" -user "$USER_NAME" -password "$PASSWORD" "$home/Maildir"
  cat > "$work/moat.toml" <<EOT
data_dir = "$data"
[listen]
smtp = "127.0.0.1:$((port + 1))"
imap = "127.0.0.1:$port"
[smtp]
hostname = "mx.example.test"
local_domains = ["example.test"]
[imap]
allow_plaintext_loopback = true
[filters]
disabled = ["rdns", "antivirus"]
[log]
level = "error"
EOT
  "$MOAT" serve -config "$work/moat.toml" >"$work/moat.log" 2>&1 &
  mpid=$!; pids+=("$mpid")
  wait_port "$port"
  echo "== $n messages: $LABEL" >&2
  "$BENCH" measure -label "$LABEL $n" -target "127.0.0.1:$port" -user "$USER_NAME" -password "$PASSWORD" \
    -runs "$RUNS" -body-runs $([ "$n" -ge 100000 ] && echo 1 || echo 3) -server-pid "$mpid" | tee -a "$results"
  stop "$mpid"
  rm -rf "$data"

  # ---- Dovecot
  if [ "$DOVECOT" = 1 ]; then
    dport=$((40000 + RANDOM % 10000)) conf=$work/dovecot.conf
    printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$USER_NAME" "$PASSWORD" "$VUID" "$VGID" "$home" >"$work/users"
    chown root:dovecot "$work/users"; chmod 640 "$work/users"
    install -d -m 755 "$work/state"
    cat >"$conf" <<EOT
protocols = imap
listen = 127.0.0.1
base_dir = /run/mailboxbench-dovecot
instance_name = mailboxbench
state_dir = $work/state
log_path = $work/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = $VUID
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $work/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $dport
  }
  inet_listener imaps {
    port = 0
  }
}
protocol imap {
  mail_max_userip_connections = 100
}
EOT
    dovecot -F -c "$conf" >"$work/dovecot.stdout" 2>&1 &
    dpid=$!; pids+=("$dpid")
    wait_port "$dport"
    # First contact indexes the new Maildir: not part of the figures.
    "$BENCH" measure -label warmup -target "127.0.0.1:$dport" -user "$USER_NAME" -password "$PASSWORD" \
      -runs 1 -body-runs 1 -conns 0 >/dev/null
    echo "== $n messages: dovecot" >&2
    "$BENCH" measure -label "dovecot $n" -target "127.0.0.1:$dport" -user "$USER_NAME" -password "$PASSWORD" \
      -runs "$RUNS" -body-runs $([ "$n" -ge 100000 ] && echo 1 || echo 3) -server-pid "$dpid" -proc-name imap | tee -a "$results"
    stop "$dpid"
  fi
  rm -rf "$home"
done

python3 - "$results" <<'EOT'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cols = [("select_first_ms", "SELECT first (ms)"), ("select_ms", "SELECT (ms)"),
        ("fetch_last10_ms", "FETCH last 10 (ms)"), ("search_subject_first_ms", "SEARCH SUBJECT first (ms)"),
        ("search_subject_ms", "SEARCH SUBJECT (ms)"), ("search_body_ms", "SEARCH BODY (ms)"),
        ("rss_per_conn_kib", "RSS per selected conn (KiB)"), ("pss_per_conn_kib", "PSS per selected conn (KiB)")]
print("| server, messages | " + " | ".join(c[1] for c in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for r in rows:
    print(f"| {r['label']} | " + " | ".join(f"{r[c]:.1f}" for c, _ in cols) + " |")
EOT
