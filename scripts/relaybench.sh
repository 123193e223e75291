#!/usr/bin/env bash
# relaybench.sh: relay throughput to a downstream sink (Postfix's smtp-sink),
# three ways, in one sitting on this machine:
#
#   1. straight to the sink:  smtp-source -s SESSIONS -m N -l SIZE -> smtp-sink
#   2. through moat's queue:  scripts/relaybench (SESSIONS goroutines Enqueue,
#                             each message fsync'd as before a 250; the queue
#                             relays to smtp-sink); "accepted" is when every
#                             Enqueue returned, "relayed" when the sink had all
#   3. through moat serve:    smtp-source -> moat (relay_domains = relay.test,
#                             a [[route]] to the sink, the content filters on,
#                             the DNS checks and rate limits off as in
#                             checksbench.sh's "off") -> smtp-sink; "accepted"
#                             is smtp-source's wall time, "relayed" when
#                             moat_queue_deliveries_total counts N sent
#   4. through Postfix:       smtp-source -> Postfix (its own config folder,
#                             relayhost = the sink) -> smtp-sink; "accepted"
#                             is smtp-source's wall time, "relayed" when the
#                             log shows N status=sent
#
# (2) measures the queue alone; (1), (3) and (4) go through SMTP.
#
#   sudo scripts/relaybench.sh [-n 5000] [-s 20] [-l 10240] [-p 2526]
#
# Needs root (Postfix starts as root; smtp-sink drops to nobody), postfix and
# go. Everything started is stopped by pid or by `postfix -c DIR stop`.
set -euo pipefail
N=5000 SESSIONS=20 SIZE=10240 SINK_PORT=2526 PF_PORT=2527
while getopts "n:s:l:p:" o; do
  case $o in
    n) N=$OPTARG ;; s) SESSIONS=$OPTARG ;; l) SIZE=$OPTARG ;; p) SINK_PORT=$OPTARG; PF_PORT=$((OPTARG + 1)) ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/relaybench.XXXXXX)
chmod 755 "$WORK"
SINK_PID="" PF_STARTED=0 MOAT_PID=""
cleanup() {
  set +e
  [ -n "$MOAT_PID" ] && kill "$MOAT_PID" 2>/dev/null && wait "$MOAT_PID" 2>/dev/null
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  [ "$PF_STARTED" = 1 ] && postfix -c "$WORK/pf/conf" stop >/dev/null 2>&1 && sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

smtp-sink -u nobody "127.0.0.1:$SINK_PORT" 1000 >/dev/null 2>&1 &
SINK_PID=$!
wait_port "$SINK_PORT"

echo "== 1. smtp-source straight to smtp-sink"
t0=$(now); smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" -M loadgen.test -f bench@origin.test -t user@relay.test "127.0.0.1:$SINK_PORT"; t1=$(now)
DIRECT=$(rate "$N" "$t0" "$t1")

echo "== 2. moat's queue (Enqueue with fsync, relay to smtp-sink)"
(cd "$HERE" && go build -o "$WORK/relaybench" ./scripts/relaybench)
QUEUE_OUT=$("$WORK/relaybench" -sink "127.0.0.1:$SINK_PORT" -c "$SESSIONS" -n "$N" -size "$SIZE" -dir "$WORK/spool")
echo "$QUEUE_OUT"

echo "== 3. smtp-source -> moat serve (relay domain) -> smtp-sink"
(cd "$HERE" && go build -o "$WORK/moat" ./cmd/moat)
MOAT_PORT=$((PF_PORT + 1)) METRICS_PORT=$((PF_PORT + 2))
cat >"$WORK/moat.toml" <<EOF
data_dir = "$WORK/moat-data"
[listen]
smtp = "127.0.0.1:$MOAT_PORT"
metrics = "127.0.0.1:$METRICS_PORT"
[smtp]
hostname = "mx.bench.test"
local_domains = ["bench.test"]
relay_domains = ["relay.test"]
quarantine_owner = "postmaster@bench.test"
[filters]
disabled = ["rdns", "antivirus", "spf", "dkim", "dmarc", "greylist", "ratelimit-connect", "ratelimit-mail", "ratelimit-rcpt", "dnsbl", "uribl"]
[log]
level = "error"
[[route]]
domains = ["relay.test"]
hosts = ["127.0.0.1:$SINK_PORT"]
tls = "none"
EOF
printf 'bench\nbench\n' | "$WORK/moat" user add -admin -config "$WORK/moat.toml" postmaster@bench.test >/dev/null
"$WORK/moat" serve -config "$WORK/moat.toml" >"$WORK/moat.log" 2>&1 &
MOAT_PID=$!
wait_port "$MOAT_PORT"
moat_sent() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^moat_queue_deliveries_total\{class="relay",result="sent"\}/ {print $2+0}'; }
t0=$(now); smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" -M loadgen.test -f bench@origin.test -t user@relay.test "127.0.0.1:$MOAT_PORT"; t1=$(now)
for _ in $(seq 6000); do
  [ "$(moat_sent)" -ge "$N" ] 2>/dev/null && break
  sleep 0.1
done
t2=$(now)
MOAT_SENT=$(moat_sent)
MOAT_LINE="accepted $(rate "$N" "$t0" "$t1") msg/s, relayed $(rate "$N" "$t0" "$t2") msg/s ($MOAT_SENT sent)"
kill "$MOAT_PID"; wait "$MOAT_PID" 2>/dev/null || true
MOAT_PID=""

echo "== 4. smtp-source -> Postfix -> smtp-sink"
PF=$WORK/pf
mkdir -p "$PF/conf" "$PF/spool" "$PF/data"
chown postfix "$PF/data"
cat >"$PF/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
biff = no
smtputf8_enable = no
EOF
sed -n '/^pickup/,$p' "$HERE/delivery/queue/postfix_test.go" | sed '/^`$/,$d' >"$PF/conf/master.cf.tail"
{ echo "127.0.0.1:$PF_PORT inet n - n - - smtpd"; cat "$PF/conf/master.cf.tail"; } >"$PF/conf/master.cf"
rm "$PF/conf/master.cf.tail"
postfix -c "$PF/conf" start >/dev/null 2>&1
PF_STARTED=1
wait_port "$PF_PORT"
t0=$(now); smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" -M loadgen.test -f bench@origin.test -t user@relay.test "127.0.0.1:$PF_PORT"; t1=$(now)
for _ in $(seq 6000); do
  [ "$(grep -c 'status=sent' "$PF/maillog" 2>/dev/null || true)" -ge "$N" ] && break
  sleep 0.1
done
t2=$(now)
SENT=$(grep -c 'status=sent' "$PF/maillog" || true)

echo
echo "relay throughput: $N messages x $SIZE B, $SESSIONS sessions; $(nproc) cores, $(uname -r), fs $(findmnt -n -o FSTYPE --target "$WORK")"
echo "  smtp-source -> smtp-sink:            $DIRECT msg/s"
echo "  moat queue  -> smtp-sink:            $(echo "$QUEUE_OUT" | sed 's/.*accepted/accepted/')"
echo "  smtp-source -> moat -> smtp-sink:    $MOAT_LINE"
echo "  smtp-source -> Postfix -> smtp-sink: accepted $(rate "$N" "$t0" "$t1") msg/s, relayed $(rate "$N" "$t0" "$t2") msg/s ($SENT sent, postfix $(postconf -h mail_version))"
