#!/bin/bash
# A bounded soak (SOAK_SECONDS, default 120): fio verify on 4 jobs, each its
# own NBD connection and region, writing with verify_backlog so data is
# checked while the load runs; at the same time another connection trims
# and zeroes its own region and checks it reads back as zeroes, and the
# control files are compacted and read in a loop.  It must end with zero
# verification errors, and memory must return to baseline once everything
# is trimmed.
source "$top_srcdir/tests/functions.sh"
need_tool fio nbdsh
secs=${SOAK_SECONDS:-120}
mkdir "$tmpdir/ctl"
start_zram size=1G control="$tmpdir/ctl"
ctl=$tmpdir/ctl
base=$(awk '{ print $3 }' "$ctl/mm_stat")

# Racing the I/O: compaction, stats reads, trims and zeroes.
# Each failure ends it with a message, and the test with it.
(
    end=$((SECONDS + secs))
    n=0
    while [ $SECONDS -lt $end ]; do
        echo 1 > "$ctl/compact" || { echo "racer: writing compact failed"; exit 1; }
        cat "$ctl/mm_stat" "$ctl/io_stat" "$ctl/stat" "$ctl/classes" "$ctl/debug_stat" > /dev/null ||
            { echo "racer: reading the stats files failed"; exit 1; }
        n=$((n + 1))
        sleep 0.05
    done
    echo "racer: $n rounds of compact and stats reads"
) > "$tmpdir/racer.out" 2>&1 &
racer=$!
cleanup_fn "kill $racer 2>/dev/null"
timeout $((secs + 120)) nbdsh -u "$uri" -c "
import os, random, time
rng = random.Random(7)
base = 768 << 20               # the last 256 MiB: not fio's
end = time.time() + $secs
n = 0
while time.time() < end:
    off = base + rng.randrange(0, (256 << 20) - (1 << 20), 4096)
    ln = rng.randrange(4096, 1 << 20, 4096)
    h.pwrite(os.urandom(ln // 2) + bytes(ln // 2), off)
    if rng.random() < 0.5:
        h.trim(ln, off)
    else:
        h.zero(ln, off)
    assert h.pread(ln, off) == bytes(ln), 'trimmed or zeroed range not zero at %d' % off
    n += 1
print('trim/zero rounds:', n)
" > "$tmpdir/trimmer.out" 2>&1 &
trimmer=$!
cleanup_fn "kill $trimmer 2>/dev/null"

timeout $((secs + 300)) fio --name=soak --ioengine=nbd --uri="$uri" \
    --rw=randwrite --bs=4k --bsrange=4k-64k --iodepth=16 --numjobs=4 \
    --size=192m --offset_increment=192m --time_based --runtime="$secs" \
    --verify=crc32c --verify_backlog=512 --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
    --buffer_compress_percentage=60 --refill_buffers \
    --group_reporting --output-format=json > "$tmpdir/fio.json" ||
    { cat "$tmpdir/fio.json"; fail "fio soak failed"; }
wait $trimmer || { cat "$tmpdir/trimmer.out"; fail "the trimmer saw non-zero data"; }
cat "$tmpdir/trimmer.out"
wait $racer || { cat "$tmpdir/racer.out"; fail "the racer failed"; }
cat "$tmpdir/racer.out"
/usr/bin/python3 - "$tmpdir/fio.json" <<'PY' || fail "fio reported errors"
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]    # fio's nbd engine prints a line first
print("fio: error=%d, written %d MiB, verified %d MiB" % (j["error"], j["write"]["io_bytes"] >> 20, j["read"]["io_bytes"] >> 20))
assert j["error"] == 0
assert j["read"]["io_bytes"] > 0, "nothing was verified"
PY
io=$(cat "$ctl/io_stat")
echo "io_stat: $io"
set -- $io
[ "$1" = 0 ] && [ "$2" = 0 ] || fail "failed reads/writes during the soak: $io"

# Everything trimmed, then compacted: back to the baseline.
timeout 120 nbdsh -u "$uri" -c 'h.trim(h.get_size(), 0)'
echo 1 > "$ctl/compact"
mm=$(cat "$ctl/mm_stat"); echo "mm_stat after trimming everything: $mm"
set -- $mm
[ "$1" = 0 ] || fail "orig_data_size $1 after trimming everything"
[ "$3" -le "$base" ] || fail "mem_used_total $3 above the baseline $base after trimming everything"
echo OK
