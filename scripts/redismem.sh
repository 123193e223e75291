#!/usr/bin/env bash
# Redis memory of a trained classifier: moat's Bayes model on Redis beside
# rspamd's, both trained on the same mail, each on a private redis-server
# of its own (no persistence, loopback), measured as used_memory after
# training minus before, with the key count.
#
#   scripts/redismem.sh [SPAM HAM]
#
# SPAM and HAM are folders of messages (default: the training part of the
# date split, .cache/corpus/split/train-{spam,ham}, else the whole corpus
# .cache/corpus/{spam,ham}; scripts/corpus/fetch.sh fetches it). rspamd is
# configured as for the corpus benchmark (shared/bench/peer-config/rspamd:
# Bayes on Redis, the network modules off) and learns with rspamc
# (Learn-Type: bulk); moat learns with `moat bayes train` on
# [state] backend = "redis". Needs redis-server, rspamd and rspamc.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$PWD
cache=$root/.cache/corpus
spam=${1:-}
ham=${2:-}
if [[ -z $spam ]]; then
	if [[ -d $cache/split/train-spam ]]; then
		spam=$cache/split/train-spam ham=$cache/split/train-ham
	else
		spam=$cache/spam ham=$cache/ham
	fi
fi
peercfg=${PEERCFG:-$root/../shared/bench/peer-config}
[[ -d $peercfg/rspamd ]] || peercfg=/work/shared/bench/peer-config
work=$(mktemp -d /tmp/redismem.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

log() { echo "redismem: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_start() { # PORT DIR
	mkdir -p "$2"
	redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$2" >"$2/redis.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
	log "redis on $1 did not start"; exit 1
}
used() { redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
keys() { redis-cli -p "$1" dbsize; }
# files DIR: the messages of a folder, symlinks resolved (rspamc skips links).
files() { find -L "$1" -type f -print0 | xargs -0 readlink -f; }

nspam=$(files "$spam" | wc -l)
nham=$(files "$ham" | wc -l)
log "training on $nspam spam ($spam) and $nham ham ($ham)"

# --- moat ------------------------------------------------------------------
go build -o "$work/moat" ./cmd/moat
mport=$(free_port)
redis_start "$mport" "$work/moat-redis"
cat >"$work/moat.toml" <<EOF
data_dir = "$work/moat-data"
[listen]
smtp = "127.0.0.1:0"
[smtp]
local_domains = ["example.com"]
[state]
backend = "redis"
address = "127.0.0.1:$mport"
EOF
m0=$(used "$mport")
"$work/moat" bayes train -config "$work/moat.toml" --spam "$spam" --ham "$ham" >"$work/moat-train.log" 2>&1 || { cat "$work/moat-train.log" >&2; exit 1; }
m1=$(used "$mport")
mkeys=$(keys "$mport")
log "moat: $(tail -1 "$work/moat-train.log")"

# --- rspamd ----------------------------------------------------------------
rport=$(free_port)
redis_start "$rport" "$work/rspamd-redis"
d=$work/rspamd
mkdir -p "$d/run" "$d/log" "$d/db"
cp -r "$peercfg/rspamd/local.d" "$d/"
sed "s/@NORMAL_WORKERS@/$(nproc)/" "$peercfg/rspamd/rspamd.conf" >"$d/rspamd.conf"
chown -R _rspamd: "$d" 2>/dev/null || true
nport=$(free_port)
cport=$(free_port)
rspamd -f -c "$d/rspamd.conf" -u _rspamd -g _rspamd --var LOCAL_CONFDIR="$d" --var NORMAL_PORT="$nport" \
	--var CONTROLLER_PORT="$cport" --var REDIS_PORT="$rport" --var RUNDIR="$d/run" \
	--var LOGDIR="$d/log" --var DBDIR="$d/db" >"$d/rspamd.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do rspamc -h "127.0.0.1:$cport" stat >/dev/null 2>&1 && break; sleep 1; done
r0=$(used "$rport")
for c in spam ham; do
	dir=$spam
	[[ $c == ham ]] && dir=$ham
	files "$dir" | xargs rspamc -h "127.0.0.1:$cport" -n 2 --header "Learn-Type: bulk" learn_$c >"$d/learn-$c.log" 2>&1 || true
done
r1=$(used "$rport")
rkeys=$(keys "$rport")
learned="$(grep -c 'success = true' "$d/learn-spam.log" || true) spam, $(grep -c 'success = true' "$d/learn-ham.log" || true) ham"
log "rspamd learned $learned"

mib() { echo "scale=2; $1 / 1048576" | bc; }
echo
echo "| trained on $nspam spam + $nham ham | Redis memory (used_memory after − before) | keys |"
echo "|---|---|---|"
echo "| moat ([state] backend = \"redis\") | $(mib $((m1 - m0))) MiB | $mkeys |"
echo "| rspamd (Bayes on Redis, learned $learned) | $(mib $((r1 - r0))) MiB | $rkeys |"
