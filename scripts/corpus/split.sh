#!/usr/bin/env bash
# Deployment-shaped corpus benchmark (issue 16): each class of the
# SpamAssassin public corpus (scripts/corpus/fetch.sh) ordered by its
# messages' Date (fallback: the first Received date), the oldest 40 % to
# train on, the newest 60 % to test, and every system judged on its whole
# verdict, not on its classifier alone.
#
#   scripts/corpus/split.sh [--no-peers] [--only sa|rspamd] [--skip-moat]
#                           [--scores FILE] [--name NAME] [--reuse-peers]
#                           [--peer-sample N] [--resplit]
#
# 1. moat: a real `moat serve` with the default configuration (filters
#    rdns and antivirus off, as the embedded default has them; SPF, DKIM,
#    DMARC and the DNS lists on, answered by no resolver: this machine has
#    no network), its Bayes trained by `moat bayes train` on the training
#    part; the test part is sent through its SMTP listener, one
#    connection per message (split.py send), and each message's verdict is
#    read from moat's decision line (json log) by the queue id of the 250
#    reply: accept, tag, quarantine or reject; a refusal before DATA counts
#    as flagged and is listed. --scores FILE adds `[rules] scores_file =
#    FILE` (a table of `moat rules fit`).
# 2. SpamAssassin: every local rule plus Bayes, network tests off
#    (shared/bench/peer-config/spamassassin without zero_non_bayes),
#    sa-learn on the training part, spamd/spamc on the test part: spam is
#    X-Spam-Status Yes (required_score 5).
# 3. rspamd: its full local verdict (shared/bench/peer-config/rspamd),
#    learn_spam/learn_ham on the training part, `rspamc symbols` on the
#    test part: flagged is any action but "no action".
#    The peers judge every Nth test message of each class (--peer-sample,
#    default 4: SpamAssassin with all its rules takes about a second a
#    message here); the table shows moat on the same sample beside them.
# 4. The table (split.py report): spam caught and ham flagged at each
#    system's own thresholds, and the recall its scores would give at
#    0.5 % of ham (threshold chosen on the results: optimistic).
#
# Several runs (--name) share one split and one table: run the peers once,
# then moat with other scores (--no-peers --scores F --name moat-fitted).
# Results in .cache/corpus/split/ (moat.tsv, sa.tsv, rspamd.tsv,
# results.md): class, flagged, score, verdict, file, symbols per message.
set -euo pipefail

peers=(sa rspamd)
skip_moat=false
scores=""
name=moat
sample=4
resplit=false
while [[ $# -gt 0 ]]; do
	case $1 in
	--no-peers | --reuse-peers) peers=(); shift ;;
	--only) peers=("$2"); shift 2 ;;
	--skip-moat) skip_moat=true; shift ;;
	--scores) scores=$(realpath "$2"); shift 2 ;;
	--name) name=$2; shift 2 ;;
	--peer-sample) sample=$2; shift 2 ;;
	--resplit) resplit=true; shift ;;
	*) echo "usage: $0 [--no-peers] [--only sa|rspamd] [--skip-moat] [--scores FILE] [--name NAME]" >&2; exit 2 ;;
	esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CORPUS_CACHE:-$root/.cache/corpus}
peercfg=${PEER_CONFIG:-$root/../shared/bench/peer-config}
[[ -d $peercfg ]] || peercfg=/work/shared/bench/peer-config
work=$cache/split
mkdir -p "$work"
py="python3 $root/scripts/corpus/split.py"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ensure_packages() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if [[ ${#missing[@]} -gt 0 ]]; then
		log "installing ${missing[*]}"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
	fi
}

"$root/scripts/corpus/fetch.sh" >&2
if [[ ! -s $work/split.tsv ]] || $resplit; then # the split is deterministic
	log "splitting by date"
	$py split "$cache" "$work" | tee "$work/split.txt" >&2
fi
log "building moat"
(cd "$root" && go build -o "$work/moat-$name" ./cmd/moat)
moat=$work/moat-$name
cat "$work/test-spam.txt" "$work/test-ham.txt" >"$work/test.txt"
for c in spam ham; do awk -v n="$sample" 'NR % n == 1 || n == 1' "$work/test-$c.txt" >"$work/peer-$c.txt"; done

# --- moat through SMTP ----------------------------------------------------
run_moat() {
	local d=$work/run-$name port pid
	rm -rf "$d"
	mkdir -p "$d"
	port=$(free_port)
	{
		echo "data_dir = \"$d/data\""
		echo "[listen]"
		echo "smtp = \"127.0.0.1:$port\""
		echo "[smtp]"
		echo "hostname = \"mx.bench.example\""
		echo "local_domains = [\"bench.example\"]"
		echo "[filters]"
		echo "disabled = [\"rdns\", \"antivirus\"]"
		echo "[log]"
		echo "level = \"${LOG_LEVEL:-debug}\""
		echo "format = \"json\""
		if [[ -n $scores ]]; then
			echo "[rules]"
			echo "scores_file = \"$scores\""
		fi
	} >"$d/moat.toml"
	"$moat" check-config -config "$d/moat.toml" >&2
	echo "bench-password" | "$moat" user add -config "$d/moat.toml" user@bench.example >&2
	log "moat: bayes train on $(wc -l <"$work/train-spam.txt") spam, $(wc -l <"$work/train-ham.txt") ham"
	"$moat" bayes train -config "$d/moat.toml" --spam "$work/train-spam" --ham "$work/train-ham" >&2
	"$moat" serve -config "$d/moat.toml" 2>"$d/moat.log" &
	pid=$!
	for _ in $(seq 1 100); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
		sleep 0.2
	done
	log "moat: sending $(wc -l <"$work/test.txt") test messages through SMTP"
	$py send --addr "127.0.0.1:$port" --rcpt user@bench.example --list "$work/test.txt" --out "$d/smtp.tsv"
	kill "$pid"
	wait "$pid" || true
	$py moat --results "$d/smtp.tsv" --log "$d/moat.log" --out "$work/$name.tsv"
}

# --- SpamAssassin, every local rule and Bayes -----------------------------
run_sa() {
	ensure_packages spamassassin spamc spamd
	local d=$work/sa site port pid
	rm -rf "$d"
	mkdir -p "$d/site" "$d/bayes"
	site=$d/site
	cp /etc/spamassassin/*.pre "$site/"
	sed "s|@BAYES_PATH@|$d/bayes/bayes|" "$peercfg/spamassassin/local.cf.in" >"$site/local.cf"
	chmod -R a+rwX "$d"
	chmod a+rx "$cache" "$cache/spam" "$cache/ham" "$work"
	log "spamassassin: sa-learn"
	runuser -u nobody -- sa-learn --siteconfigpath="$site" -L --spam "$work/train-spam" >&2
	runuser -u nobody -- sa-learn --siteconfigpath="$site" -L --ham "$work/train-ham" >&2
	port=$(free_port)
	spamd --siteconfigpath="$site" -L -x -u nobody -i 127.0.0.1 -p "$port" -m 2 --min-children=2 \
		--pidfile "$d/spamd.pid" -s stderr 2>"$d/spamd.log" &
	pid=$!
	for _ in $(seq 1 120); do spamc -d 127.0.0.1 -p "$port" -K >/dev/null 2>&1 && break; sleep 1; done
	: >"$work/sa.tsv"
	local t0
	t0=$(date +%s)
	for c in spam ham; do
		# the X-Spam-Status field, unfolded: "Yes, score=7.1 required=5.0 tests=A,B ..."
		xargs -P 2 -I{} sh -c 'printf "%s\t%s\n" "{}" "$(spamc -d 127.0.0.1 -p '"$port"' <"{}" | perl -0777 -ne '"'"'if (/^X-Spam-Status: (.*?)\n(?![ \t])/ms) { ($s = $1) =~ s/\s+/ /g; print $s }'"'"')"' \
			<"$work/peer-$c.txt" >"$d/out-$c.txt"
		$py sa --out "$work/sa.tsv" --class $c "$d/out-$c.txt"
	done
	log "spamassassin: $(wc -l <"$work/sa.tsv") classified in $(($(date +%s) - t0)) s"
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# --- rspamd, its full local verdict ---------------------------------------
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
	log "rspamd: learning (Learn-Type: bulk)"
	for c in spam ham; do
		xargs -a "$work/train-$c.txt" rspamc -h "127.0.0.1:$cport" -n 2 --header "Learn-Type: bulk" \
			learn_$c >"$d/learn-$c.log" 2>&1
	done
	: >"$work/rspamd.tsv"
	for c in spam ham; do
		xargs -a "$work/peer-$c.txt" rspamc -h "127.0.0.1:$nport" -n 2 symbols >"$d/scan-$c.txt" 2>&1
		$py rspamd --scan "$d/scan-$c.txt" --class $c >>"$work/rspamd.tsv"
	done
	log "rspamd: $(wc -l <"$work/rspamd.tsv") classified"
	kill "$spid" "$rpid" 2>/dev/null || true
	wait "$spid" "$rpid" 2>/dev/null || true
}

if ! $skip_moat; then run_moat; fi
for p in "${peers[@]}"; do
	case $p in
	sa) run_sa ;;
	rspamd) run_rspamd ;;
	esac
done

{
	echo "SpamAssassin public corpus split by date: $(cat "$work/split.txt" | tr '\n' ';') $(date -u +%Y-%m-%d), $(nproc) cores"
	echo
	echo "### every test message"
	echo
	args=()
	for f in "$work"/moat*.tsv; do
		[[ -s $f && $f != *.detail.tsv ]] && args+=("$(basename "$f" .tsv)=$f")
	done
	$py report "${args[@]}"
	echo
	echo "### every ${sample}th test message of each class, every system"
	echo
	args=()
	cat "$work/peer-spam.txt" "$work/peer-ham.txt" >"$work/peer.txt"
	for f in "$work"/moat*.tsv; do
		[[ -s $f && $f != *.detail.tsv ]] || continue
		awk -F'\t' 'NR == FNR {keep[$1] = 1; next} keep[$5]' "$work/peer.txt" "$f" >"$work/sample-$(basename "$f")"
		args+=("$(basename "$f" .tsv)=$work/sample-$(basename "$f")")
	done
	for f in "$work/sa.tsv" "$work/rspamd.tsv"; do
		[[ -s $f ]] && args+=("$(basename "$f" .tsv)=$f")
	done
	$py report "${args[@]}"
} | tee "$work/results.md"
