#!/bin/bash
# The ublk front end (ublk=on): /dev/ublkbN served by the plugin itself.
# Its queue parameters; its queue threads are I/O flushers; NBD and ublk
# I/O interleaved on the same blocks; fio verify at queue depth 32 with
# trims (trimmed blocks must read back as zeroes); reset refused while the
# device is open, and once it is closed reset deletes it and a disksize
# write brings it back; SIGKILL of the server with fio in flight ends in
# I/O errors, not a hang, the device goes away and the next start works
# (with per-tag buffers, the path for kernels without user copy).
# In a guest where this kernel has no ublk (ublk-lib.sh).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
source "$top_srcdir/tests/ublk-lib.sh"
need_tool fio blkdiscard blockdev
ublk_here_or_guest "$@"

log=$tmpdir/nbdkit.log
exec 3>&2 2>"$log"
start_ctl -v -- size=128M ublk=on
exec 2>&3 3>&-
dev=$(ublk_dev_of "$nbdkit_pid")
name=${dev#/dev/}
echo "nbdkit $nbdkit_pid serves $dev"
grep -o 'ublk: /dev/ublkb.*' "$log" || fail "the log does not say how $dev copies data"

# --- a good disk: 4 KiB blocks, discard, write zeroes, flush, one queue
# per CPU, not rotational ---
q=/sys/block/$name/queue
for f in logical_block_size physical_block_size; do
    [ "$(cat $q/$f)" = 4096 ] || fail "$f is $(cat $q/$f), not 4096"
done
[ "$(cat $q/rotational)" = 0 ] || fail "$dev is rotational"
[ "$(cat $q/discard_max_bytes)" -gt 0 ] || fail "$dev takes no discard"
[ "$(cat $q/write_zeroes_max_bytes)" -gt 0 ] || fail "$dev takes no write zeroes"
[ "$(cat $q/write_cache)" = "write back" ] || fail "$dev takes no flush (write_cache: $(cat $q/write_cache))"
[ "$(cat $q/max_sectors_kb)" -ge 512 ] || fail "max I/O is only $(cat $q/max_sectors_kb) KiB"
nq=$(ls /sys/block/$name/mq | wc -l)
[ "$nq" = "$(nproc)" ] || fail "$nq queues for $(nproc) CPUs"
[ "$(blockdev --getsize64 $dev)" = $((128 << 20)) ] || fail "$dev is $(blockdev --getsize64 $dev) bytes"

# PR_SET_IO_FLUSHER shows as PF_MEMALLOC_NOIO|PF_LOCAL_THROTTLE (0x80000|0x100000) in the
# thread's flags (the 9th field of stat): at least one thread per queue.
flushers=0
for t in /proc/$nbdkit_pid/task/*; do
    fl=$(awk '{ print $9 }' $t/stat 2>/dev/null) || continue
    (( (fl & 0x180000) == 0x180000 )) && flushers=$((flushers + 1))
done
echo "$flushers I/O flusher threads"
[ $flushers -ge $nq ] || fail "only $flushers I/O flusher threads for $nq queues"

# --- the same blocks through NBD and ublk ---
ublk_nbd_interleave $dev 17 400

# --- fio verify at depth 32, with trims beside it; trimmed blocks must
# read back as zeroes ---
timeout 60 dd if=/dev/urandom of=$dev bs=1M seek=96 count=32 oflag=direct status=none ||
    fail "filling the trim region of $dev"
timeout 600 fio --ioengine=libaio --direct=1 --filename=$dev --randrepeat=0 \
    --name=verify --rw=randwrite --bsrange=4k-256k --iodepth=32 --size=96M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
    --buffer_compress_percentage=60 --refill_buffers \
    --name=trim --rw=randtrim --bs=64k --iodepth=16 --offset=96M --size=32M \
    --eta=never --output=$tmpdir/fio.out ||
    { cat $tmpdir/fio.out; fail "fio verify on $dev"; }
[ "$(grep -c "err= 0" $tmpdir/fio.out)" = 2 ] || { cat $tmpdir/fio.out; fail "fio reported errors"; }
timeout 60 cmp -n $((32 << 20)) -i $((96 << 20)):0 $dev /dev/zero ||
    fail "the trimmed region of $dev does not read back as zeroes"
[ "$(field $ctl/io_stat 4)" -ge 8192 ] || fail "fio's trims freed only $(field $ctl/io_stat 4) blocks of 8192"
timeout 60 blkdiscard $dev || fail "blkdiscard $dev"
[ "$(field $ctl/mm_stat 1)" = 0 ] || fail "orig_data_size is $(field $ctl/mm_stat 1) after blkdiscard"
[ "$(field $ctl/io_stat 1)" = 0 ] || fail "failed reads: $(cat $ctl/io_stat)"
[ "$(field $ctl/io_stat 2)" = 0 ] || fail "failed writes: $(cat $ctl/io_stat)"

# --- reset: refused while open; once closed it deletes the device ---
sleep 300 < $dev &
holder=$!
cleanup_fn "kill $holder 2>/dev/null"
expect_err "Device or resource busy" $ctl/reset 1
[ -b $dev ] || fail "$dev went away on a refused reset"
kill $holder; wait $holder 2>/dev/null || :
expect_ok $ctl/reset 1
[ -e $dev ] && fail "$dev still there after reset"
expect_bytes $ctl/initstate $'0\n'
expect_ok $ctl/disksize 64M
dev=$(ublk_dev_of "$nbdkit_pid")
[ "$(blockdev --getsize64 $dev)" = $((64 << 20)) ] || fail "after reset and disksize=64M, $dev is $(blockdev --getsize64 $dev) bytes"
echo "reset deleted the device; disksize brought back $dev"

# --- SIGKILL of the server with I/O in flight ---
timeout 120 fio --name=inflight --filename=$dev --ioengine=libaio --direct=1 \
    --rw=randrw --bs=4k-64k --iodepth=32 --time_based --runtime=60 \
    --eta=never --output=$tmpdir/fio-kill.out 2>$tmpdir/fio-kill.err &
fio_pid=$!
cleanup_fn "kill $fio_pid 2>/dev/null"
# Kill only once requests are in flight (fio starts slowly in a guest).
old=${dev#/dev/ublkb}
for (( i=0; i<600; i++ )); do
    [ "$(awk '{ print $1 + $2 }' /sys/block/ublkb$old/inflight)" -gt 0 ] && break
    kill -0 $fio_pid 2>/dev/null || { cat $tmpdir/fio-kill.out $tmpdir/fio-kill.err; fail "fio ended before the kill"; }
    sleep 0.1
done
[ $i -lt 600 ] || fail "fio had no request in flight on $dev within 60 s"
kill -KILL $nbdkit_pid
wait $fio_pid && rc=0 || rc=$?
[ $rc = 124 ] && fail "fio hung for 120 s after the server was killed"
[ $rc != 0 ] || fail "fio saw no error after the server was killed"
grep -q 'io_u error' $tmpdir/fio-kill.out $tmpdir/fio-kill.err || { cat $tmpdir/fio-kill.out $tmpdir/fio-kill.err; fail "fio's requests did not fail with I/O errors"; }
for (( i=0; i<200; i++ )); do [ -e $dev ] || break; sleep 0.1; done
[ -e $dev ] && fail "$dev still there 20 s after its server was killed"
echo "SIGKILL: fio ended with status $rc and $(grep -c 'io_u error' $tmpdir/fio-kill.err) I/O errors, $dev went away"
# The next start works, and deletes the dead /dev/ublkc$old.
# This one with per-tag buffers, the path of kernels without user copy.
exec 3>&2 2>"$log.2"
start_zram -v -D zram.ublk_tag_buffers=1 -- size=16M ublk=on
exec 2>&3 3>&-
dev2=$(ublk_dev_of "$nbdkit_pid")
grep -q "ublk: $dev2: .*per-tag buffers" "$log.2" || { grep ublk "$log.2"; fail "-D zram.ublk_tag_buffers=1 did not give per-tag buffers"; }
ublk_nbd_interleave $dev2 23 150
# (The kernel may give the new device the old one's number.)
left=$(ls /sys/class/ublk-char | grep -c '^ublkc[0-9]') || :
[ "$left" = 1 ] || { grep ublk "$log.2"; fail "$left ublk devices after a restart: the killed server's /dev/ublkc$old was left behind"; }
timeout 30 dd if=/dev/zero of=$dev2 bs=1M count=4 oflag=direct status=none || fail "I/O on $dev2 after a restart"
stop_nbdkit $nbdkit_pid
for (( i=0; i<100; i++ )); do [ -e $dev2 ] || break; sleep 0.1; done
[ -e $dev2 ] && fail "$dev2 still there after nbdkit exited"
echo "PASS: $0"
