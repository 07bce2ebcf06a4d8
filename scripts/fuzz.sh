#!/bin/sh
# fuzz.sh - build the libFuzzer targets and fuzz each for a while.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGET defaults to every target
# (fuzz_line fuzz_meta fuzz_config fuzz_query fuzz_jscan fuzz_frame_fast, and fuzz_lua_json
# when the build has the Lua binding, TAPE_BUILD_LUA). The build goes to
# build-fuzz/ (clang-14, -fsanitize=fuzzer,address,undefined). Each target
# runs on a copy of its seed corpus, tests/fuzz/corpus/<target>/, in
# tests/fuzz/corpus-work/<target>/ (ignored by git, kept between runs so
# the corpus keeps growing). Exits non-zero if any target finds a crash,
# leak, timeout or sanitizer report, and prints where the input is.
# Environment: CC (default clang-14), FUZZ_JOBS (build jobs, default 2).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
all_targets="fuzz_line fuzz_meta fuzz_config fuzz_query fuzz_jscan fuzz_frame_fast fuzz_lua_json"
seconds=60
if [ $# -gt 0 ]; then
    seconds=$1
    shift
fi
case $seconds in
    ''|*[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
targets=$*
for t in $targets; do
    case " $all_targets " in
        *" $t "*) ;;
        *) echo "fuzz.sh: unknown target '$t' (known: $all_targets)" >&2; exit 2 ;;
    esac
done

cc=${CC:-clang-14}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz.sh: $cc not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 2
fi

build=$root/build-fuzz
# Warnings stay errors: clang may see what gcc does not, and that is worth
# knowing. Benchmarks and examples are not needed here.
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTAPE_BUILD_FUZZ=ON -DTAPE_BUILD_BENCH=OFF -DTAPE_BUILD_EXAMPLES=OFF >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; echo "fuzz.sh: configure failed" >&2; exit 2; }
# fuzz_lua_json exists only when Lua 5.4's headers were found.
if [ -z "$targets" ]; then
    targets=$all_targets
    if ! grep -q '^TAPE_BUILD_LUA:BOOL=ON' "$build/CMakeCache.txt"; then
        targets=$(echo "$all_targets" | sed 's/ fuzz_lua_json//')
        echo "fuzz.sh: no Lua 5.4 headers (liblua5.4-dev): skipping fuzz_lua_json"
    fi
fi
# shellcheck disable=SC2086
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $targets ||
    { echo "fuzz.sh: build failed" >&2; exit 2; }

work=$root/tests/fuzz/corpus-work
failed=0
summary=""
for t in $targets; do
    dir=$work/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    rm -f "$dir"/artifacts/*
    cp -R "$root/tests/fuzz/corpus/$t/." "$dir/corpus/"
    log=$dir/fuzz.log
    echo "fuzz.sh: $t for ${seconds}s (log: $log)"
    # -timeout: an input taking 10 s is a finding (a hang), as is a leak.
    set +e
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
    files=$(find "$dir/corpus" -type f | wc -l | tr -d ' ')
    if [ $rc -eq 0 ]; then
        line="$t: ok, ${runs:-?} runs, coverage ${cov:-?} edges, corpus $files files"
    else
        failed=1
        crash=$(find "$dir/artifacts" -type f | head -n 1)
        line="$t: FAILED (exit $rc), input: ${crash:-none saved}"
        echo "---- $t: last lines of $log" >&2
        tail -n 40 "$log" >&2
        if [ -n "$crash" ]; then
            echo "---- reproduce: $build/tests/fuzz/$t $crash" >&2
            echo "---- input as hex:" >&2
            od -An -tx1 "$crash" | head -n 20 >&2
        fi
    fi
    echo "$line"
    summary="$summary$line
"
done
printf '\nfuzz.sh summary (%ss per target):\n%s' "$seconds" "$summary"
exit $failed
