#!/usr/bin/env bash
# Strict mypy, one run per unit (test modules of different units share names: conftest),
# on two lanes at once. mypy's cache is not safe for concurrent runs, so the first unit
# (give one that imports torch and transformers) fills .mypy_cache alone, then each lane
# works on its own copy of it (.mypy_cache-lane-N). Usage: scripts/typecheck.sh MYPY UNIT...
set -euo pipefail
mypy=$1
shift

check() {  # check CACHE_DIR UNIT
    local files
    files=$(find "$2" -name '*.py' -not -path '*/gantry/proto/*' -not -path '*/node_modules/*')
    [ -z "$files" ] && return 0
    # shellcheck disable=SC2086
    if ! out=$("$mypy" --cache-dir "$1" $files 2>&1); then
        printf 'mypy %s\n%s\n' "$2" "$out"
        return 1
    fi
    printf 'mypy %s: %s\n' "$2" "$(tail -n 1 <<<"$out")"
}

lane() {  # lane CACHE_DIR UNIT...: every unit checked, failure reported at the end
    local cache=$1 status=0
    shift
    rm -rf "$cache" && cp -r .mypy_cache "$cache"
    for unit in "$@"; do check "$cache" "$unit" || status=1; done
    return $status
}

status=0
check .mypy_cache "$1" || status=1
shift
first=() second=()
for unit in "$@"; do  # alternate, so both lanes get large and small units
    if [ ${#first[@]} -le ${#second[@]} ]; then first+=("$unit"); else second+=("$unit"); fi
done
lane .mypy_cache-lane-1 "${first[@]}" &
one=$!
lane .mypy_cache-lane-2 "${second[@]}" || status=1
wait $one || status=1
exit $status
