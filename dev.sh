#!/bin/sh
# The two commands of the README.  Each installs what is missing (Debian 12,
# apt-get), builds, and goes:
#   ./dev.sh demo   build and run `kiln serve` on the example DAGs in dags/
#   ./dev.sh test   build with ASan+UBSan and run every test; ends with
#                   the line "N passed, N failed"
set -eu
cd "$(dirname "$0")"
top=$(pwd)

PACKAGES="build-essential autoconf automake libtool pkg-config
          libsqlite3-dev libuv1-dev libyaml-dev libjson-c-dev liblua5.4-dev libssl-dev libh2o-dev curl
          libcurl4-openssl-dev libcmocka-dev libcsv-dev python3-pandas sqlite3 procps util-linux python3 tzdata git
          python3-sklearn python3-numpy chromium nodejs"

install_missing() {
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "dev.sh: installing$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing > /dev/null
}

# build DIR [configure flags...]: an out-of-tree build, so the demo build and
# the sanitizer build never step on each other.
build() {
    dir=$1; shift
    [ -x configure ] || ./autogen.sh > /dev/null 2>&1
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/Makefile" ]; then
        (cd "$dir" && "$top/configure" -q "$@")
    fi
    make -C "$dir" -j"$(nproc)" > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }
}

case "${1:-}" in
demo)
    install_missing
    build build
    echo "dev.sh: kiln serve on dags/, UI on http://127.0.0.1:8080 (state in .kiln/; Ctrl-C stops it)"
    echo "dev.sh: try, in another terminal:  build/kiln dags trigger etl_fanout --wait"
    exec build/kiln serve --home .kiln --dags dags
    ;;
test)
    install_missing
    build build-san --enable-sanitizers
    # Leaks fail the test that caused them; the shepherd outlives its tests by
    # design and is not leak-checked at exit.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    make -C build-san -j"$(nproc)" check-programs > build-san/build.log 2>&1 ||
        { tail -40 build-san/build.log; exit 1; }
    KILN_BIN="$top/build-san/kiln" UNIT_DIR="$top/build-san/tests/unit" exec sh tests/run.sh
    ;;
*)
    echo "usage: ./dev.sh demo | test" >&2
    exit 2
    ;;
esac
