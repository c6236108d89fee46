#!/bin/bash
# The writeback policy holding a swap workload under a mem_limit (issue
# 19): swap on uzram (a loop device over the control filesystem's `disk`),
# mem_limit below what the workload's swapped pages need compressed, a
# backing file, and the policy's near_limit on or off.  With it on, the
# workload must finish with every byte checked, no swap write error
# (dmesg's "Write-error on swap-device" count, io_stat's failed_writes)
# and bd_stat/policy_stat showing the writeback; with it off the same
# mem_limit fails writes, which is what shows the policy does the work.
#
#   fio-jobs/bench-swap-policy.sh [SIZE_MIB [CGROUP_MIB [LIMIT_MIB [MODES]]]]
#                                 (256 64 48 "on off")
#
# The workload (tests/swap-workload SIZE_MIB 2) runs in a memory cgroup of
# CGROUP_MIB; its pages are half text, half random, one in 16 zero.
# Prints, per mode: mem_limit, the workload's result and time,
# mem_used_total's peak (sampled) and mem_used_max, bd_stat, policy_stat,
# failed_writes and the swap write errors in dmesg.  Exits 1 if "on"
# fails any of the above or "off" fails no write.  Needs root, loop
# devices, swap and a memory cgroup: it takes /tmp/uzram-test.lock for
# each mode, as the tests do.  Not in the suite: see fio-jobs/README.md.
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
export top_srcdir=$src top_builddir=${top_builddir:-$src/build}
source "$src/tests/functions.sh"
source "$src/tests/control-lib.sh"
need_tool mkswap swapon swapoff losetup dmesg
size=${1:-256} cgmib=${2:-64} limit=${3:-48} modes=${4:-on off}
workload=$top_builddir/tests/swap-workload
[ -x "$workload" ] || fail "$workload not built"
# O_DIRECT on the backing file: a disk file system, not tmpfs.
bfile=$(mktemp /var/tmp/uzram-bench-swap-policy.XXXXXX) || fail "mktemp"
cleanup_fn "rm -f $bfile"

swap_errors () { dmesg | grep -c 'Write-error on swap-device' || :; }

# run MODE: one run, under the lock (flock on fd 9 below).
run ()
{
    local mode=$1 errs0 errs1 peak=0 t0 t1 rc m
    truncate -s 0 "$bfile" && truncate -s 1G "$bfile"
    start_ctl mlock=true
    expect_ok "$ctl/backing_dev" "$bfile"
    expect_ok "$ctl/mem_limit" "${limit}M"
    expect_ok "$ctl/disksize" 1G
    [ "$mode" = on ] && expect_ok "$ctl/writeback_policy" near_limit=1
    attach_loop "$ctl/disk"
    timeout 30 mkswap "$loop" >/dev/null || fail "mkswap $loop"
    timeout 30 swapon -p 32767 "$loop" || fail "swapon $loop"
    cleanup_fn "! grep -q \"^$loop \" /proc/swaps || timeout 300 swapoff $loop"
    cg_create $((cgmib << 20))
    errs0=$(swap_errors)
    t0=$(date +%s.%N)
    cg_run timeout 300 "$workload" "$size" 2 > "$tmpdir/workload.$mode" 2>&1 &
    local wpid=$!
    while pid_alive $wpid; do
        m=$(field "$ctl/mm_stat" 3)
        [ "$m" -gt "$peak" ] && peak=$m
        sleep 0.2
    done
    wait $wpid && rc=0 || rc=$?
    t1=$(date +%s.%N)
    errs1=$(swap_errors)
    echo "== policy $mode: mem_limit ${limit} MiB, workload $size MiB in a $cgmib MiB cgroup"
    echo "workload: exit $rc in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $(tail -1 "$tmpdir/workload.$mode")"
    echo "mem_used_total peak (sampled) $((peak >> 20)) MiB, mem_used_max $(( $(field "$ctl/mm_stat" 5) >> 20 )) MiB"
    echo "bd_stat (count reads writes): $(cat "$ctl/bd_stat")"
    echo "policy_stat (idle limit recompressed): $(cat "$ctl/policy_stat")"
    echo "io_stat failed_writes: $(field "$ctl/io_stat" 2)"
    echo "dmesg swap write errors: $((errs1 - errs0))"
    eval "res_$mode='$rc $(field "$ctl/io_stat" 2) $((errs1 - errs0)) $(field "$ctl/bd_stat" 1)'"
    timeout 300 swapoff "$loop" || fail "swapoff $loop"
    cg_remove
    cg=
    detach_loop "$loop" "$ctl/disk"
    stop_nbdkit "$nbdkit_pid"
    ctl_cleanup "$ctl"
}

exec 9> /tmp/uzram-test.lock
for mode in $modes; do
    flock 9
    run "$mode"
    flock -u 9
done
status=0
if [ -n "${res_on:-}" ]; then
    set -- $res_on
    [ "$1" = 0 ] && [ "$2" = 0 ] && [ "$3" = 0 ] && [ "$4" -gt 0 ] ||
        { echo "FAIL: with the policy on: exit $1, failed_writes $2, swap errors $3, bd_count $4"; status=1; }
fi
if [ -n "${res_off:-}" ]; then
    set -- $res_off
    [ "$2" -gt 0 ] ||
        { echo "FAIL: with the policy off no write failed: mem_limit is not below the need"; status=1; }
fi
exit $status
