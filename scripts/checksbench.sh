#!/usr/bin/env bash
# checksbench.sh: SMTP acceptance of a moat binary with its DNS checks off
# and on, side by side, with a warm DNS cache (20 sessions x N x 10 KB,
# scripts/smtpbench, a new connection per message, fsync before 250).
#
#   scripts/checksbench.sh [-n 5000] [-rounds 3] [-moat ./moat] [-only off|on]
#
# "off": the content filters (headers, mime, gtube, attachments, bayes
# untrained). "on": the same plus SPF, DKIM (Ed25519-signed mail), DMARC
# (p=reject, passing), greylisting and rate limits (loopback exempt, as
# an MX's own network would be), and the DNS lists (a dnsbl and a uribl
# zone served beside the sender's). A DNS server on loopback
# (scripts/benchdns) answers for the sender's domain; each round first
# sends 200 messages to warm the resolver cache. Rounds alternate off and
# on so that drift on a shared machine falls on both.
set -euo pipefail
cd "$(dirname "$0")/.."

N=5000 ROUNDS=3 MOAT=./moat ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift ;;
    -rounds) ROUNDS=$2; shift ;;
    -moat) MOAT=$2; shift ;;
    -only) ONLY=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$MOAT" ] || go build -o "$MOAT" ./cmd/moat
go build -o "$work/smtpbench" ./scripts/smtpbench
go build -o "$work/benchdns" ./scripts/benchdns

# The sender's key, and its zone: SPF passes from loopback, DMARC p=reject
# passes through the aligned signature.
openssl genpkey -algorithm ed25519 -out "$work/dkim.pem" 2>/dev/null
pub=$(openssl pkey -in "$work/dkim.pem" -pubout -outform DER | tail -c 32 | base64)
cat > "$work/example.net.zone" <<EOF
\$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 3600
@ IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc IN TXT "v=DMARC1; p=reject"
bench._domainkey IN TXT "v=DKIM1; k=ed25519; p=$pub"
EOF
cat > "$work/bl.test.zone" <<EOF
\$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 3600
2.0.0.127 IN A 127.0.0.2
EOF
cat > "$work/dbl.test.zone" <<EOF
\$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 3600
test IN A 127.0.1.2
EOF
dnsport=$((20000 + RANDOM % 20000))
"$work/benchdns" -addr "127.0.0.1:$dnsport" example.net="$work/example.net.zone" \
  bl.test="$work/bl.test.zone" dbl.test="$work/dbl.test.zone" 2>"$work/dns.log" &
pids+=($!)

run() { # mode port
  local mode=$1 port=$2 dir="$work/data-$1"
  local disabled='"rdns", "antivirus", "spf", "dkim", "dmarc", "greylist", "ratelimit-connect", "ratelimit-mail", "ratelimit-rcpt", "dnsbl", "uribl"'
  local lists=""
  if [ "$mode" = on ]; then
    disabled='"rdns", "antivirus"'
    lists='
[filters.dnsbl]
skip_networks = []
[[filters.dnsbl.list]]
zone = "bl.test"
weight = 1
[[filters.uribl.list]]
zone = "dbl.test"
weight = 1'
  fi
  rm -rf "$dir"
  cat > "$work/$mode.toml" <<EOF
data_dir = "$dir"
[listen]
smtp = "127.0.0.1:$port"
[smtp]
hostname = "mx.example.com"
local_domains = ["example.com"]
[dns]
upstream = "127.0.0.1:$dnsport"
[filters]
disabled = [$disabled]
[log]
level = "error"
$lists
EOF
  "$MOAT" serve -config "$work/$mode.toml" >"$work/$mode.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  printf 'bench\n' | "$MOAT" user add -config "$work/$mode.toml" alice@example.com >/dev/null
  "$work/smtpbench" -addr "127.0.0.1:$port" -rcpt alice@example.com -from bob@example.net \
    -c 20 -n 200 -dkim-key "$work/dkim.pem" >/dev/null
  local out
  out=$("$work/smtpbench" -addr "127.0.0.1:$port" -rcpt alice@example.com -from bob@example.net \
    -c 20 -n "$N" -dkim-key "$work/dkim.pem")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$mode: $out" | head -1
  echo "$out" | tail -1 | sed 's/^/    /'
}

port=$((40000 + RANDOM % 10000))
for r in $(seq "$ROUNDS"); do
  for mode in off on; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$mode" ] && continue
    port=$((port + 1))
    echo -n "round $r "
    run "$mode" "$port"
  done
done
