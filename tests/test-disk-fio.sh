#!/bin/bash
# fio with libaio and verification on a loop device over `disk`, at queue
# depth 32, random writes of mixed sizes then a verify pass, with trims
# mixed in.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool fio

start_ctl size=128M
attach_loop "$ctl/disk"

# Meanwhile the statistics are read without pause: each read must come
# back promptly however busy the I/O is (they are lock-free snapshots).
reader ()
{
    local n=0 f
    while [ ! -e "$tmpdir/fio.done" ]; do
        for f in mm_stat io_stat stat debug_stat classes; do
            timeout 5 cat "$ctl/$f" > /dev/null || { echo "slow: $f" > "$tmpdir/reader.err"; return 1; }
        done
        n=$((n + 1))
    done
    echo $n > "$tmpdir/reader.n"
}
reader &
reader_pid=$!
cleanup_fn "touch $tmpdir/fio.done; wait $reader_pid 2>/dev/null"
fio_verify 4k-256k
touch "$tmpdir/fio.done"
wait $reader_pid || fail "a statistics read took over 5 s during I/O: $(cat "$tmpdir/reader.err")"
echo "statistics read $(cat "$tmpdir/reader.n") times over during fio"
timeout 300 fio --name=trimwrite --filename="$loop" --ioengine=libaio --direct=1 \
    --rw=randtrim --bs=64k --iodepth=16 --size=32M --output="$tmpdir/fio2.out" ||
    { cat "$tmpdir/fio2.out"; fail "fio randtrim on $loop"; }
[ "$(field "$ctl/io_stat" 4)" -gt 0 ] || fail "fio's trims freed nothing"
[ "$(field "$ctl/io_stat" 1)" = 0 ] || fail "failed reads: $(cat "$ctl/io_stat")"
echo "PASS: $0"
