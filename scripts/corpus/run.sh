#!/usr/bin/env bash
# Corpus benchmark: moat's Bayes classifier against SpamAssassin's and
# rspamd's, trained and tested on the same folds of the SpamAssassin public
# corpus (scripts/corpus/fetch.sh).
#
#   scripts/corpus/run.sh [--folds 10] [--peer-folds 3] [--no-peers] [--only sa|rspamd]
#                         [--skip-moat] [--reuse-peers]
#
# 1. moat: `moat bayes eval` with --folds folds (every message tested
#    once), per-message scores in $work/moat.tsv; the fold of each message
#    is the split the peers use.
# 2. peers (Debian packages, installed when missing): for folds
#    0..peer-folds-1, learn every other fold, classify the fold.
#      SpamAssassin: sa-learn, then spamd/spamc with every non-BAYES rule
#        scored 0 (shared/bench/peer-config/spamassassin); the raw Bayes
#        probability is read from the X-Spam-Bayes header it adds.
#      rspamd: a private redis and rspamd (shared/bench/peer-config/rspamd),
#        `rspamc learn_spam/learn_ham --header "Learn-Type: bulk"` (plain
#        learn_ham refuses most ham), then `rspamc symbols`; the
#        probability is read from BAYES_SPAM / BAYES_HAM.
# 3. one table: every system measured by `moat bayes report` (the same
#    code) on the same folds: spam called at probability >= 0.95 (from
#    there moat's classifier alone tags a message under the default
#    policy), recall at ham false-positive rates of 0.3 % and 0.9 %, and
#    the figures at each of moat's spam bands.
#
# Peers are slow (SpamAssassin about 14 msg/s here), so they run on fewer
# folds by default; the table says which.
set -euo pipefail

folds=10
peer_folds=3
peers=(sa rspamd)
skip_moat=false
reuse_peers=false
while [[ $# -gt 0 ]]; do
	case $1 in
	--folds) folds=$2; shift 2 ;;
	--peer-folds) peer_folds=$2; shift 2 ;;
	--no-peers) peers=(); shift ;;
	--only) peers=("$2"); shift 2 ;;
	--skip-moat) skip_moat=true; shift ;; # reuse the last moat run's scores and split
	--reuse-peers) peers=(); reuse_peers=true; shift ;; # table with the last peer runs' scores
	*) echo "usage: $0 [--folds N] [--peer-folds N] [--no-peers] [--only sa|rspamd] [--skip-moat] [--reuse-peers]" >&2; exit 2 ;;
	esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CORPUS_CACHE:-$root/.cache/corpus}
peercfg=${PEER_CONFIG:-$root/../shared/bench/peer-config}
[[ -d $peercfg ]] || peercfg=/work/shared/bench/peer-config
work=$cache/run
mkdir -p "$work"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

"$root/scripts/corpus/fetch.sh" >&2
log "building moat"
(cd "$root" && go build -o "$work/moat" ./cmd/moat)
moat=$work/moat

# 1. moat
if ! $skip_moat; then
	log "moat: $folds-fold cross-validation"
	"$moat" bayes eval --spam "$cache/spam" --ham "$cache/ham" --folds "$folds" --scores "$work/moat.tsv" | tee "$work/moat.txt" >&2
fi
moat_rate=$(awk '$1 == "moat" {print $NF}' "$work/moat.txt" | tail -1)

# fold_files FOLD CLASS IN|OUT: the files of a class in (test) or out of
# (training) a fold, from moat's scores.
fold_files() {
	awk -F'\t' -v f="$1" -v c="$2" -v side="$3" \
		'$2 == c && ((side == "in" && $1 == f) || (side == "out" && $1 != f)) {print $4}' "$work/moat.tsv"
}
# link_dir DIR < files: a folder of symlinks (peers read folders).
link_dir() {
	rm -rf "$1"
	mkdir -p "$1"
	while read -r f; do ln -s "$f" "$1/$(basename "$f")"; done
}

ensure_packages() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if [[ ${#missing[@]} -gt 0 ]]; then
		log "installing ${missing[*]}"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
	fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- SpamAssassin ---------------------------------------------------------
run_sa() {
	ensure_packages spamassassin spamc spamd
	local d=$work/sa site port pid
	rm -rf "$d"
	mkdir -p "$d/site" "$d/bayes"
	site=$d/site
	# A site folder of our own replaces /etc/spamassassin, plugin loading
	# (*.pre: Bayes among them) included.
	cp /etc/spamassassin/*.pre "$site/"
	sed "s|@BAYES_PATH@|$d/bayes/bayes|" "$peercfg/spamassassin/local.cf.in" >"$site/local.cf"
	perl "$peercfg/spamassassin/zero_non_bayes.pl" /usr/share/spamassassin "$site" >"$site/zero.cf"
	# spamd drops root for nobody: let nobody read the folds and the database.
	chmod -R a+rwX "$d"
	chmod a+rx "$cache" "$cache/spam" "$cache/ham" "$work"
	: >"$work/sa.tsv"
	local total_n=0 total_t=0
	for ((f = 0; f < peer_folds; f++)); do
		rm -rf "$d/bayes"/*
		fold_files "$f" spam out | link_dir "$d/train-spam"
		fold_files "$f" ham out | link_dir "$d/train-ham"
		chmod -R a+rwX "$d"
		log "spamassassin fold $f: sa-learn $(ls "$d/train-spam" | wc -l) spam, $(ls "$d/train-ham" | wc -l) ham"
		runuser -u nobody -- sa-learn --siteconfigpath="$site" -L --spam "$d/train-spam" >&2
		runuser -u nobody -- sa-learn --siteconfigpath="$site" -L --ham "$d/train-ham" >&2
		port=$(free_port)
		spamd --siteconfigpath="$site" -L -x -u nobody -i 127.0.0.1 -p "$port" -m 2 --min-children=2 \
			--pidfile "$d/spamd.pid" -s stderr 2>"$d/spamd.log" &
		pid=$!
		for _ in $(seq 1 120); do spamc -d 127.0.0.1 -p "$port" -K >/dev/null 2>&1 && break; sleep 1; done
		local t0 t1 n
		t0=$(date +%s.%N)
		n=0
		for c in spam ham; do
			fold_files "$f" $c in >"$d/test-$c.txt"
			n=$((n + $(wc -l <"$d/test-$c.txt")))
			# two clients in parallel, like spamd's two children
			xargs -P 2 -I{} sh -c 'printf "%s\t%s\n" "{}" "$(spamc -d 127.0.0.1 -p '"$port"' <"{}" | grep -m1 "^X-Spam-Bayes:" | cut -d" " -f2)"' \
				<"$d/test-$c.txt" >"$d/out-$c.txt"
			awk -F'\t' -v f="$f" -v c=$c '{p = ($2 == "" ? 0.5 : $2); printf "%d\t%s\t%s\t%s\n", f, c, p, $1}' "$d/out-$c.txt" >>"$work/sa.tsv"
		done
		t1=$(date +%s.%N)
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		total_n=$((total_n + n))
		total_t=$(echo "$total_t + $t1 - $t0" | bc)
		log "spamassassin fold $f: $n classified in $(echo "$t1 - $t0" | bc) s"
	done
	echo "scale=1; $total_n / $total_t" | bc >"$work/sa.rate"
}

# --- rspamd ---------------------------------------------------------------
run_rspamd() {
	ensure_packages rspamd redis-server
	local d=$work/rspamd rport nport cport rpid spid
	rm -rf "$d"
	mkdir -p "$d/run" "$d/log" "$d/db" "$d/redis"
	cp -r "$peercfg/rspamd/local.d" "$d/"
	sed "s/@NORMAL_WORKERS@/$(nproc)/" "$peercfg/rspamd/rspamd.conf" >"$d/rspamd.conf"
	chown -R _rspamd: "$d" 2>/dev/null || true
	rport=$(free_port)
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$d/redis" >"$d/redis.log" 2>&1 &
	rpid=$!
	nport=$(free_port)
	cport=$(free_port)
	rspamd -f -c "$d/rspamd.conf" -u _rspamd -g _rspamd --var LOCAL_CONFDIR="$d" --var NORMAL_PORT="$nport" \
		--var CONTROLLER_PORT="$cport" --var REDIS_PORT="$rport" --var RUNDIR="$d/run" \
		--var LOGDIR="$d/log" --var DBDIR="$d/db" >"$d/rspamd.out" 2>&1 &
	spid=$!
	for _ in $(seq 1 60); do rspamc -h "127.0.0.1:$cport" stat >/dev/null 2>&1 && break; sleep 1; done
	: >"$work/rspamd.tsv"
	local total_n=0 total_t=0
	for ((f = 0; f < peer_folds; f++)); do
		redis-cli -p "$rport" flushall >/dev/null
		# rspamc skips symlinks in folders: give it the files themselves.
		log "rspamd fold $f: learning (Learn-Type: bulk)"
		for c in spam ham; do
			fold_files "$f" $c out >"$d/train-$c.txt"
			xargs -a "$d/train-$c.txt" rspamc -h "127.0.0.1:$cport" -n 2 --header "Learn-Type: bulk" \
				learn_$c >"$d/learn-$c.log" 2>&1
		done
		log "rspamd fold $f: learned $(grep -c 'success = true' "$d/learn-spam.log" || true) spam, $(grep -c 'success = true' "$d/learn-ham.log" || true) ham"
		local t0 t1 n=0
		for c in spam ham; do
			fold_files "$f" $c in >"$d/test-$c.txt"
			n=$((n + $(wc -l <"$d/test-$c.txt")))
		done
		t0=$(date +%s.%N)
		for c in spam ham; do
			xargs -a "$d/test-$c.txt" rspamc -h "127.0.0.1:$nport" -n 2 symbols >"$d/scan-$c.txt" 2>&1
		done
		t1=$(date +%s.%N)
		for c in spam ham; do
			# "Results for file: PATH (..." then "Symbol: BAYES_SPAM (4.1)[99.87%]"
			awk -v f="$f" -v c=$c '
				function flush() { if (file != "") printf "%d\t%s\t%s\t%s\n", f, c, p, file }
				/^Results for file: / { flush(); file = $4; p = 0.5 }
				/Symbol: BAYES_SPAM/ { if (match($0, /\[[0-9.]+%/)) p = substr($0, RSTART + 1, RLENGTH - 2) / 100 }
				/Symbol: BAYES_HAM/ { if (match($0, /\[[0-9.]+%/)) p = 1 - substr($0, RSTART + 1, RLENGTH - 2) / 100 }
				END { flush() }' "$d/scan-$c.txt" >>"$work/rspamd.tsv"
		done
		total_n=$((total_n + n))
		total_t=$(echo "$total_t + $t1 - $t0" | bc)
		log "rspamd fold $f: $n classified in $(echo "$t1 - $t0" | bc) s"
	done
	kill "$spid" "$rpid" 2>/dev/null || true
	wait "$spid" "$rpid" 2>/dev/null || true
	echo "scale=1; $total_n / $total_t" | bc >"$work/rspamd.rate"
}

for p in "${peers[@]}"; do
	case $p in
	sa) run_sa ;;
	rspamd) run_rspamd ;;
	esac
done

# 3. the table
awk -F'\t' -v n="$peer_folds" '$1 < n' "$work/moat.tsv" >"$work/moat-peerfolds.tsv"
rate() { if [[ -s $work/$1.rate ]]; then cat "$work/$1.rate"; else echo 0; fi; }
{
	echo "SpamAssassin public corpus: $(ls "$cache/spam" | wc -l) spam, $(ls "$cache/ham" | wc -l) ham; $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
	echo
	echo "## moat, all $folds folds"
	"$moat" bayes report --scores "$work/moat.tsv" --name moat --per-sec "$moat_rate"
	if [[ ${#peers[@]} -gt 0 ]] || $reuse_peers; then
		echo
		echo "## folds 0-$((peer_folds - 1)) of the same $folds-fold split, every system"
		"$moat" bayes report --scores "$work/moat-peerfolds.tsv" --name moat --per-sec "$moat_rate"
		if [[ -s $work/sa.tsv ]]; then
			"$moat" bayes report --scores "$work/sa.tsv" --name spamassassin --per-sec "$(rate sa)"
		fi
		if [[ -s $work/rspamd.tsv ]]; then
			"$moat" bayes report --scores "$work/rspamd.tsv" --name rspamd --per-sec "$(rate rspamd)"
		fi
	fi
} | tee "$work/results.txt"
