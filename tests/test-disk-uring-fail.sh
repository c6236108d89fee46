#!/bin/bash
# A ring that fails once serving must not hang its CPU's I/O: with the
# test hook -D zram.ring_fail=N, after N requests through the rings one
# ring's io_uring_enter fails (its entries keep their requests and stay
# registered, as a broken ring's would).  nbdkit must log it as an error
# and end the connection: I/O through a loop device over `disk` then fails
# (EIO) within a bounded time instead of waiting forever in D state, and
# the loop device detaches.  enable_uring=Y for the test, put back after.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool taskset

enable_fuse_uring

log=$tmpdir/nbdkit.log
start_ctl -v -D zram.ring_fail=3000 -- size=64M uring=on 2>"$log"
cleanup_fn '[ "$rc" -ne 0 ] && { echo "--- nbdkit log:"; grep -E "error|uring" "'"$log"'" | tail -20; }'
wait_ring_threads "$nbdkit_pid" 1
attach_loop "$ctl/disk"

# Reads and writes from every CPU, so that the failed ring's queue gets
# requests, until they fail; 4 KiB each, so 3000 requests come quickly.
# A worker that is still running after 60 s is stuck: the I/O hangs.
pids=()
for cpu in $(seq 0 $(( $(possible_cpus) - 1 ))); do
    ( i=0
      while [ $i -lt 100 ]; do
          taskset -c $cpu dd if=/dev/urandom of="$loop" bs=4k count=64 \
              seek=$((cpu * 4096 + i * 64)) oflag=direct status=none 2>/dev/null || exit 0
          taskset -c $cpu dd if="$loop" of=/dev/null bs=4k count=64 \
              skip=$((cpu * 4096 + i * 64)) iflag=direct status=none 2>/dev/null || exit 0
          i=$((i + 1))
      done
      exit 1 ) &
    pids+=($!)
done
cleanup_fn "kill ${pids[*]} 2>/dev/null"
hung=
for p in "${pids[@]}"; do
    if ! wait_for 60 eval "! pid_alive $p"; then
        hung=$p
        break
    fi
done
if [ -n "$hung" ]; then
    states=$(for p in $(pgrep -P "$hung") $hung; do awk '{ print $3 }' /proc/$p/stat 2>/dev/null; done | tr '\n' ' ')
    # Let the stuck I/O go (the kernel aborts the connection once nbdkit's
    # files are closed), then say what happened.
    kill -KILL "$nbdkit_pid"
    fail "I/O through $loop still waiting 60 s after the ring failed (states: $states)"
fi
for p in "${pids[@]}"; do
    wait "$p" || fail "the I/O never failed: the injected ring failure did not happen"
done
grep -q 'queue [0-9]* (ring [0-9]*) failed' "$log" ||
    fail "nbdkit did not log the ring's failure: $(grep -E 'error|uring' "$log" | tail -5)"
grep -q 'nbdkit: .*error.*failed (io_uring_enter' "$log" ||
    fail "the ring's failure was not logged as an error: $(grep 'failed (' "$log" | head -2)"
timeout 30 dd if="$loop" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &&
    fail "reads through $loop still succeed after the connection was ended"
timeout 30 losetup -d "$loop" || fail "losetup -d $loop after the ring failed"
stop_nbdkit "$nbdkit_pid"
echo "the ring failed, I/O got errors and the loop device detached"
echo "PASS: $0"
