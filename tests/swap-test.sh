#!/bin/bash
# swap-test.sh VIA: the user's swap path end to end through `uzram up
# --swap --via VIA`.  A workload in a memory cgroup whose limit is a quarter
# of its working set swaps through the device and back; its data must check
# out byte for byte, mm_stat must show the pages while it runs, and after it
# ends (swap with discard) the device must give them back.  Only the
# workload is in the cgroup, never nbdkit or nbdfuse.
source "$top_srcdir/tests/functions.sh"
via=$1
need_tool losetup mkswap swapon swapoff
[ -c /dev/fuse ] || fail "/dev/fuse is absent"
workload=$top_builddir/tests/swap-workload
[ -x "$workload" ] || fail "$workload not built"

export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
name=swap-$via-$$
cleanup_fn "timeout 120 $uzram down $name"

dev=$(timeout 120 "$uzram" up --size 1G --swap --via "$via" --name "$name") ||
    fail "uzram up --via $via failed"
echo "swap on $dev via $via"
grep -q "^$dev " /proc/swaps || fail "$dev is not in /proc/swaps"
control=$UZRAM_RUN/$name/control

cg_create $((64 << 20))
mm () { awk "{ print \$$1 }" "$control/mm_stat"; }
cg_run timeout 300 "$workload" 256 2 > "$tmpdir/workload.out" 2>&1 &
wpid=$!
peak=0
while kill -0 $wpid 2>/dev/null; do
    o=$(mm 1); [ "$o" -gt "$peak" ] && peak=$o
    sleep 0.2
done
wait $wpid && rc=0 || rc=$?
cat "$tmpdir/workload.out"
[ $rc = 0 ] || fail "the workload failed (exit $rc): its data did not come back intact"
echo "peak orig_data_size while swapping: $peak"
# 256 MiB in a 64 MiB cgroup: well over 100 MiB must have gone out.
[ "$peak" -gt $((100 << 20)) ] || fail "mm_stat showed only $peak bytes stored: the workload did not swap through $dev"
grep -q 'checked 65536 pages' "$tmpdir/workload.out" || fail "workload did not check every page"

# The workload has exited: swap freed its slots and discarded them.
timeout 120 swapoff "$dev" || fail "swapoff $dev failed"
left=$(mm 1)
echo "orig_data_size after swapoff: $left"
[ "$left" -lt $((8 << 20)) ] || fail "$left bytes still stored after the workload ended and swapoff: freed swap pages were not discarded"
echo "swap via $via: OK"
