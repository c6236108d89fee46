#!/bin/bash
# Builds the libFuzzer targets (clang, with ASan and UBSan) in build-fuzz/
# and runs each for a bounded time on its corpus in tests/fuzz/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET [--keep]]     (default 60)
# New inputs that add coverage go to build-fuzz/corpus-TARGET; with --keep
# they are merged (minimised) into the committed corpus tests/fuzz/corpus-*.
# A crash is written to tests/fuzz/crashes/ and fails the run: keep it
# there, it is replayed by `make check` (test-fuzz-replay.sh) from then on.
set -e
src=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
keep=${2:-}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
"$src/scripts/build.sh" "$src/build-fuzz" CC=clang CFLAGS="-g -O1 $san" \
    --enable-sanitizers=address,undefined >/dev/null
b=$src/build-fuzz
libs="$b/plugin/.libs/libzramengine.a $b/allocator/.libs/libzsmalloc.a"
deps=$(pkg-config --libs lzo2 liblz4 libzstd zlib 2>/dev/null || pkg-config --libs lzo2)
mkdir -p "$src/tests/fuzz/crashes"
rc=0
# decompress: every decompressor on any stream (the first byte picks one);
# lzo-rle's is uzram's own code, instrumented, so libFuzzer is guided there.
for t in zsmalloc engine decompress; do
    tsrc=$src/tests/fuzz/fuzz-$t.c
    max_len=4096
    [ $t = decompress ] && tsrc="-DUSE_LIBFUZZER $src/tests/fuzz-decompress.c" max_len=8192
    clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$src/include" -I"$src/plugin" -I"$b" \
        $tsrc $libs $deps -pthread -o "$b/fuzz-$t"
    mkdir -p "$src/tests/fuzz/corpus-$t" "$b/corpus-$t"
    echo "=== fuzz-$t for $secs s"
    if ! ASAN_OPTIONS=detect_leaks=1 "$b/fuzz-$t" -max_total_time="$secs" -timeout=20 \
         -rss_limit_mb=2048 -max_len=$max_len -print_final_stats=1 \
         -artifact_prefix="$src/tests/fuzz/crashes/$t-" \
         "$b/corpus-$t" "$src/tests/fuzz/corpus-$t" 2> "$b/fuzz-$t.log"; then
        tail -n 60 "$b/fuzz-$t.log"
        echo "fuzz-$t: FAILED; the input is in tests/fuzz/crashes/"
        rc=1
    else
        grep -E '^stat::number_of_executed_units|^Done' "$b/fuzz-$t.log" | head -n 2
        if [ "$keep" = --keep ]; then
            "$b/fuzz-$t" -merge=1 -max_len=$max_len "$src/tests/fuzz/corpus-$t" "$b/corpus-$t" \
                2> "$b/fuzz-$t-merge.log"
            echo "corpus-$t: $(ls "$src/tests/fuzz/corpus-$t" | wc -l) inputs"
        fi
    fi
done
exit $rc
