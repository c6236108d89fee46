#!/bin/bash
# swap-test.sh VIA: the user's swap path end to end through `uzram up
# --swap --via VIA`.  A workload in a memory cgroup whose limit is a quarter
# of its working set swaps through the device and back; its data must check
# out byte for byte, mm_stat must show the pages while it runs, and after it
# ends (swap with discard) the device must give them back; `uzram down`
# must undo the rest.  Only the workload is in the cgroup, never nbdkit or
# nbdfuse.  SWAP_TEST_MIB (default 256) and SWAP_TEST_PASSES (2) size the
# workload, SWAP_TEST_CG_MIB (a quarter of it) the cgroup, and
# SWAP_TEST_BOUND (300 s) bounds it: a guest under TCG runs a smaller one,
# for longer.
source "$top_srcdir/tests/functions.sh"
via=$1
need_tool losetup mkswap swapon swapoff
[ -c /dev/fuse ] || fail "/dev/fuse is absent"
workload=$top_builddir/tests/swap-workload
[ -x "$workload" ] || fail "$workload not built"

export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
name=swap-$via-$$
cleanup_fn "[ ! -d \"$UZRAM_RUN/$name\" ] || timeout 120 $uzram down $name"

dev=$(timeout 120 "$uzram" up --size 1G --swap --via "$via" --name "$name") ||
    fail "uzram up --via $via failed"
echo "swap on $dev via $via"
grep -q "^$dev " /proc/swaps || fail "$dev is not in /proc/swaps"
control=$UZRAM_RUN/$name/control

size=${SWAP_TEST_MIB:-256} passes=${SWAP_TEST_PASSES:-2}
cg_mib=${SWAP_TEST_CG_MIB:-$(( size / 4 ))}
cg_create $(( cg_mib << 20 ))
mm () { awk "{ print \$$1 }" "$control/mm_stat"; }
cg_run timeout "${SWAP_TEST_BOUND:-300}" "$workload" "$size" "$passes" > "$tmpdir/workload.out" 2>&1 &
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
# Well over half of what is over the cgroup's limit must have gone out.
[ "$peak" -gt $(( ((size - cg_mib) << 20) / 2 )) ] || fail "mm_stat showed only $peak bytes stored: the workload did not swap through $dev"
grep -q "checked $((size * 256)) pages" "$tmpdir/workload.out" || fail "workload did not check every page"

# The workload has exited: swap freed its slots and discarded them.  A
# kernel before 6.18 discards a whole 2 MiB cluster at a time, once every
# slot in it is free, and frees the rest at swapoff without a discard (only
# zram hears of each freed slot): the header's cluster stays, and so may
# each one that holds slots the per-CPU caches kept back (64 allocated and
# 64 freed a CPU; seen in the guest: 6 to 10 MiB in all).  So the bound is
# those clusters, far below the data a missing discard would leave.
clusters=$(( 1 + 4 * $(nproc) ))
# Discards go through a kernel worker: wait for the count to settle.
last=-1
for _ in $(seq 20); do
    o=$(mm 1); [ "$o" = "$last" ] && break
    last=$o; sleep 0.25
done
echo "orig_data_size after the workload: $o; in swap: $(awk -v d="$dev" '$1 == d { print $4 }' /proc/swaps) KiB"
timeout 120 swapoff "$dev" || fail "swapoff $dev failed"
left=$(mm 1)
echo "orig_data_size after swapoff: $left"
[ "$left" -le $(( clusters << 21 )) ] || fail "$left bytes still stored after the workload ended and swapoff, more than $clusters swap clusters: freed swap pages were not discarded"
# down undoes all of up: swap, the block device, nbdkit, the control
# filesystem, the state folder.
pid=$(cat "$UZRAM_RUN/$name/nbdkit.pid")
timeout 120 "$uzram" down "$name" || fail "uzram down $name failed"
grep -q "^$dev " /proc/swaps && fail "$dev still swapped on after down"
case $dev in
/dev/nbd*) [ "$(cat "/sys/block/${dev#/dev/}/size")" = 0 ] || fail "$dev still connected after down" ;;
/dev/loop*) losetup "$dev" >/dev/null 2>&1 && fail "$dev still attached after down" ;;
esac
# A zombie counts as gone: nbdkit is a daemon, and how soon it is reaped
# is up to PID 1.
pid_alive "$pid" && fail "nbdkit (pid $pid) still running after down"
grep -q " $control " /proc/mounts && fail "$control still mounted after down"
[ -e "$UZRAM_RUN/$name" ] && fail "$UZRAM_RUN/$name left behind by down"
echo "swap via $via: OK"
