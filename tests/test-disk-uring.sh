#!/bin/bash
# `disk` served over FUSE io_uring (uring=on, with the fuse module's
# enable_uring set to Y for the test and put back after): the ring really
# serves the requests, with uring_threads= threads per possible CPU
# (nbdkit's debug output says each queue is serving, and how many
# requests it served at the end); NBD and file I/O
# interleaved on the same blocks; fio with verification at queue depth 32
# on a loop device; discard frees blocks; reset is EBUSY while the loop
# device holds `disk`; unmounting with the loop device still attached
# does not hang.  Skipped where the kernel has no FUSE over io_uring.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool fio blkdiscard

enable_fuse_uring

# nbdkit's debug output says what the rings do; but an ASan build of
# nbdkit -v hangs at exit (a reader left on glibc's setlocale lock, with
# uring=off as well), so sanitizer builds go without it and rely on the
# ring threads' names and CPU time alone.
log=$tmpdir/nbdkit.log
log2=$tmpdir/nbdkit2.log      # the uring_threads=2 server's, below
verbose=(-v -D zram.control=1)
[ -n "${SANITIZERS:-}" ] && verbose=()
start_ctl "${verbose[@]}" -- size=128M uring=on 2>"$log"
cleanup_fn '[ "$rc" -ne 0 ] && { echo "--- nbdkit log:"; grep -E "error|uring" "'"$log"'" | tail -20; }'
cleanup_fn '[ "$rc" -ne 0 ] && [ -s "'"$log2"'" ] && { echo "--- uring_threads=2 nbdkit log:"; grep -vE "debug: (zram|control): [^F]" "'"$log2"'" | tail -60; }'

# ring_ticks: the number of nbdkit's ring threads, which exist only once
# the rings are set up (uring_threads= per possible CPU), and their CPU
# time in clock ticks.
ring_ticks ()
{
    local t n=0 ticks=0 f
    for t in /proc/$nbdkit_pid/task/*; do
        case "$(cat "$t/comm" 2>/dev/null)" in zram-ring*) ;; *) continue ;; esac
        f=$(sed 's/.*) //' "$t/stat" | cut -d' ' -f12,13)
        n=$((n + 1)); ticks=$((ticks + ${f% *} + ${f#* }))
    done
    echo "$n $ticks"
}
# The rings start once the kernel has answered FUSE_INIT, which on a
# loaded machine can be a while after the mount appears.
wait_ring_threads "$nbdkit_pid" 1
if [ ${#verbose[@]} -gt 0 ]; then
    grep -q 'FUSE over io_uring: [0-9]* queues' "$log" ||
        fail "the rings were not set up: $(grep -E 'uring|error' "$log" | tail -5)"
fi

# --- NBD and file I/O interleaved on the same blocks ---
interleave_nbd_disk 7 1500

# --- fio verify on a loop device: every size up to the 256 KiB payload
# and past it (split by the kernel) ---
attach_loop "$ctl/disk"
fio_verify 4k-1m

# --- discard through the loop device frees blocks ---
nf () { field "$ctl/io_stat" 4; }
before=$(nf)
timeout 30 blkdiscard -o $((16 << 20)) -l $((8 << 20)) "$loop" || fail "blkdiscard"
[ $(( $(nf) - before )) -gt 0 ] || fail "discard freed nothing: notify_free $before -> $(nf)"
[ "$(field "$ctl/io_stat" 1)" = 0 ] || fail "failed reads: $(cat "$ctl/io_stat")"

# --- reset is EBUSY while the loop device holds `disk` ---
expect_err "Device or resource busy" "$ctl/reset" 1

# The ring threads did the work (the classic loop's threads are libfuse's
# and unnamed).
set -- $(ring_ticks)
[ "$2" -gt 0 ] || fail "the ring threads used no CPU time: they served nothing"
echo "ring threads: $1, CPU time $2 ticks"

# --- uring_threads=2: two ring threads per CPU, and they serve ---
cpus=$(python3 -c 'import sys; n=0
for r in open("/sys/devices/system/cpu/possible").read().strip().split(","):
    a, _, b = r.partition("-"); n += int(b or a) - int(a) + 1
print(n)')
[ "$1" -eq "$cpus" ] || fail "$1 ring threads with the default uring_threads=1, for $cpus possible CPUs"
main_pid=$nbdkit_pid main_ctl=$ctl main_loop=$loop
start_ctl "${verbose[@]}" -- size=128M uring=on uring_threads=2 2>"$log2"
wait_ring_threads "$nbdkit_pid" 2
set -- $(ring_ticks)
[ "$1" -eq $((2 * cpus)) ] || fail "$1 ring threads with uring_threads=2, for $cpus possible CPUs"
attach_loop "$ctl/disk"
timeout 120 dd if=/dev/urandom of="$tmpdir/blob" bs=1M count=64 status=none
timeout 60 dd if="$tmpdir/blob" of="$loop" bs=128k oflag=direct status=none ||
    fail "writing through $loop (uring_threads=2)"
timeout 60 cmp <(timeout 60 dd if="$loop" bs=128k count=512 iflag=direct status=none) "$tmpdir/blob" ||
    fail "uring_threads=2: what was read back differs from what was written"
rm -f "$tmpdir/blob"
set -- $(ring_ticks)
echo "uring_threads=2: $1 ring threads, CPU time $2 ticks"
detach_loop "$loop" "$ctl/disk"
stop_nbdkit "$nbdkit_pid"
if [ ${#verbose[@]} -gt 0 ]; then
    served=$(sed -n 's/.*FUSE over io_uring served \([0-9]*\) requests.*/\1/p' "$log2")
    [ "${served:-0}" -gt 1000 ] ||
        fail "uring_threads=2: the rings served ${served:-no} requests: $(grep -E 'uring|error' "$log2" | tail -5)"
    echo "uring_threads=2: the rings served $served requests"
else
    [ "$2" -gt 0 ] || fail "uring_threads=2: the ring threads used no CPU time"
fi
nbdkit_pid=$main_pid ctl=$main_ctl loop=$main_loop

# --- unmount with the loop device still attached: nbdkit must stop ---
kill -TERM "$nbdkit_pid"
for (( i=0; i<100; i++ )); do
    kill -0 "$nbdkit_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$nbdkit_pid" 2>/dev/null && fail "nbdkit did not stop within 10 s of SIGTERM"
wait "$nbdkit_pid" 2>/dev/null || :
if [ ${#verbose[@]} -gt 0 ]; then
    grep -q 'FUSE over io_uring: queue [0-9]* serving' "$log" ||
        fail "no ring queue served a request: $(grep -E 'uring|error' "$log" | tail -5)"
    served=$(sed -n 's/.*FUSE over io_uring served \([0-9]*\) requests.*/\1/p' "$log")
    [ -n "$served" ] || fail "nbdkit did not report the ring's requests at exit"
    [ "$served" -gt 1000 ] || fail "the ring served only $served requests"
    echo "the rings served $served requests"
fi
! grep -qE '(^|: )error: ' "$log" || fail "nbdkit logged errors: $(grep -E '(^|: )error: ' "$log" | head -3)"
timeout 10 dd if="$loop" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &&
    fail "reads through $loop still succeed after nbdkit stopped"
echo "PASS: $0"
