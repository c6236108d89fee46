#!/bin/bash
# README's test command: installs what is missing, builds, and runs the whole
# suite: the plain build's `make check`, then the sanitizer builds (ASan with
# UBSan, and TSan) of the tests in tests/sanitize.list, then each libFuzzer
# target for FUZZ_SECONDS (45).  SOAK_SECONDS (120) bounds the soak test.
# Ends with one line: "N passed, N failed, N skipped".
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
cd "$src"
# Everything the tests drive (fio, qemu-img, valgrind, clang ...), where
# missing; build.sh then asks only for what building needs.
scripts/install-deps.sh || exit 1

pass=0 failed=0 skip=0 stages_failed=()
count ()   # count BUILDDIR: adds the tests/ log's totals
{
    local log=$1/tests/test-suite.log n
    [ -f "$log" ] || return 0
    n=$(sed -n 's/^# PASS: *//p' "$log"); pass=$((pass + ${n:-0}))
    n=$(sed -n 's/^# FAIL: *//p' "$log"); failed=$((failed + ${n:-0}))
    n=$(sed -n 's/^# ERROR: *//p' "$log"); failed=$((failed + ${n:-0}))
    n=$(sed -n 's/^# XPASS: *//p' "$log"); failed=$((failed + ${n:-0}))
    n=$(sed -n 's/^# SKIP: *//p' "$log"); skip=$((skip + ${n:-0}))
}
stage ()   # stage NAME BUILDDIR "TESTS list or empty" configure options...
{
    local name=$1 dir=$2 tests=$3; shift 3
    echo "=== $name"
    if ! scripts/build.sh "$dir" "$@"; then
        echo "=== $name: build failed"; stages_failed+=("$name (build)"); failed=$((failed+1)); return
    fi
    rm -f "$dir/tests/test-suite.log"
    if [ -n "$tests" ]; then
        make -C "$dir/tests" check TESTS="$tests" || stages_failed+=("$name")
    else
        make -C "$dir" check || stages_failed+=("$name")
    fi
    [ -f "$dir/tests/test-suite.log" ] && grep -q '^# FAIL: *[1-9]\|^# ERROR: *[1-9]' "$dir/tests/test-suite.log" &&
        cat "$dir/tests/test-suite.log"
    count "$dir"
}

stage "plain build" "$src/build" ""
# Sanitizer builds run the tests named in tests/sanitize.list.
san_tests=$(grep -v '^#' tests/sanitize.list 2>/dev/null | tr '\n' ' ')
if [ -n "${san_tests// /}" ]; then
    stage "ASan+UBSan" "$src/build-asan" "$san_tests" --enable-sanitizers=address,undefined
    stage "TSan" "$src/build-tsan" "$san_tests" --enable-sanitizers=thread
fi

# libFuzzer, bounded: FUZZ_SECONDS per target (each target counts as a test).
echo "=== libFuzzer"
if scripts/fuzz.sh "${FUZZ_SECONDS:-45}"; then
    pass=$((pass + 2))
else
    failed=$((failed + 1)); stages_failed+=("libFuzzer")
fi

[ ${#stages_failed[@]} -gt 0 ] && echo "failed stages: ${stages_failed[*]}"
echo "$pass passed, $failed failed, $skip skipped"
[ "$failed" -eq 0 ] && [ ${#stages_failed[@]} -eq 0 ]
