#!/bin/sh
# The CUDA paths on a machine with a GPU (a CUDA build: configure found nvcc).
#   1. kernel memory bandwidth: kiln-gpu-bench times kiln-clean's column
#      kernels (moments pass, clip, standardize) on ROWS device-resident
#      doubles: bytes moved / kernel time, against the card's peak (2 x memory
#      clock x bus width from the device attributes);
#   2. kiln-train's objective kernel: evaluations, kernel time and GB/s from
#      kiln-train's own log (rows and targets read once per evaluation);
#   3. end to end, whole processes, --device gpu against --device cpu on the
#      same files: kiln-train (L-BFGS, ROWS x 32, CSV reading included) and
#      kiln-clean (impute mean, z-score clip, standardize; CLEAN_ROWS x 20).
#      Both models' weights are compared (max difference printed; the stated
#      tolerance is 1e-6).
# Usage: bench/bench_gpu.sh [BUILD_DIR] [ROWS] [CLEAN_ROWS]
#        (defaults: build 10000000 ROWS; CLEAN_ROWS=0 skips the clean step)
set -eu
build=${1:-build}
rows=${2:-10000000}
crows=${3:-$rows}
src=$(cd "$(dirname "$0")/.." && pwd)
GB=$build/tasks/gpu/kiln-gpu-bench TRAIN=$build/tasks/train/kiln-train CLEAN=$build/tasks/clean/kiln-clean
if [ ! -x "$GB" ]; then
    echo "bench_gpu: $GB not built: this build has no CUDA paths (configure found no nvcc)" >&2
    exit 2
fi
d=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-gpu.XXXXXX")
trap 'rm -rf "$d"' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; } # no bc needed
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
set +e
"$GB" "$rows"
rc=$?
set -e
[ "$rc" -eq 3 ] && { echo "bench_gpu: no GPU visible" >&2; exit 2; }
[ "$rc" -eq 0 ] || exit 1
peak=$("$GB" 1000 | sed -n 's/^peak_gbs //p')

cc -O2 -o "$d/gen" "$src/bench/gen_ml_data.c" -lm
t0=$(now); "$d/gen" train "$rows" 2 > "$d/train.csv"; t1=$(now)
echo "generated $rows x 32 training rows ($(du -h "$d/train.csv" | cut -f1)) in $(secs "$t0" "$t1")s (not timed below)"
for dev in gpu cpu; do
    t0=$(now)
    "$TRAIN" --data "$d/train.csv" --out "$d/$dev.json" --device "$dev" 2> "$d/$dev.err"
    t1=$(now)
    fit=$(sed -n 's/.*) in \([0-9.]*\)s$/\1/p' "$d/$dev.err")
    echo "kiln-train --device $dev: $(secs "$t0" "$t1")s end to end, fit ${fit}s; $(grep -m1 '^iter .*evaluations' "$d/$dev.err")"
    grep 'kiln-train: device\|kiln-train: gpu:' "$d/$dev.err" | sed 's/^/    /'
done
kb=$(sed -n 's/.*kernel time .*), \([0-9.]*\) GB\/s.*/\1/p' "$d/gpu.err")
[ -n "$kb" ] && echo "objective kernel: $kb GB/s = $(awk -v a="$kb" -v b="$peak" 'BEGIN { printf "%.1f", 100 * a / b }')% of the peak $peak GB/s"
# numbers of a JSON array member (nested arrays flattened), one per line
json_nums() { # file key
    awk -v key="\"$2\"" '
        index($0, key) && !on { on = 1; depth = 0 }
        on {
            line = $0
            if (index(line, key)) line = substr(line, index(line, key) + length(key))
            o = gsub(/\[/, "[", line); c = gsub(/\]/, "]", line); depth += o - c
            n = split(line, tok, /[^-+.eE0-9]+/)
            for (i = 1; i <= n; i++) if (tok[i] ~ /^-?[0-9]/) print tok[i]
            if (depth <= 0 && (o || c)) on = 0
        }' "$1"
}
for f in gpu cpu; do
    { json_nums "$d/$f.json" weights; json_nums "$d/$f.json" intercepts; } > "$d/$f.w"
done
echo "weights GPU vs CPU: max |difference| $(paste "$d/gpu.w" "$d/cpu.w" | awk '{ x = $1 - $2; if (x < 0) x = -x; if (x > m) m = x } END { printf "%.3g", m }') (tolerance 1e-6)"
rm -f "$d/train.csv"

if [ "$crows" -gt 0 ]; then
    "$d/gen" clean "$crows" 1 > "$d/clean.csv"
    for dev in gpu cpu; do
        t0=$(now)
        "$CLEAN" "$d/clean.csv" -o "$d/$dev.clean.csv" --impute mean --clip zscore:3 --scale standard --device "$dev" \
            > /dev/null 2> "$d/$dev.clean.err"
        t1=$(now)
        echo "kiln-clean --device $dev ($crows x 20; impute mean, zscore clip, standardize): $(secs "$t0" "$t1")s end to end"
        grep 'device' "$d/$dev.clean.err" | sed 's/^/    /'
    done
fi
