#!/bin/bash
# Swap on a loop device over `disk`: mkswap, swapon, pages actually
# swapped out and back in by a process under a memory limit, swapoff.
# Every step is bounded; swapoff and detach run even on failure.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool mkswap swapon swapoff python3

# As the man page says for swap: locked memory and a mem_limit.
start_ctl size=256M mlock=true mem_limit=192M
attach_loop "$ctl/disk"
timeout 30 mkswap "$loop" >/dev/null || fail "mkswap $loop"
# Highest priority, so this device takes what is swapped while it is on.
timeout 30 swapon -p 32767 "$loop" || fail "swapon $loop"
cleanup_fn "! grep -q \"^$loop \" /proc/swaps || timeout 120 swapoff $loop"
grep -q "^$loop " /proc/swaps || fail "$loop is not in /proc/swaps"

# A process in a 64 MiB memory cgroup touches 160 MiB: the rest must go to
# swap, i.e. through FUSE into the engine, and come back intact.
cg=
if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then          # v1
    cg=/sys/fs/cgroup/memory/uzram-disk-swap-$$
    mkdir "$cg" && cleanup_fn "rmdir $cg 2>/dev/null"
    echo $((64 << 20)) > "$cg/memory.limit_in_bytes" || cg=
    [ -z "$cg" ] || echo 100 > "$cg/memory.swappiness" 2>/dev/null || :
else
    v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    if [ -n "$v2" ] && grep -qw memory "$v2/cgroup.controllers" 2>/dev/null; then
        echo +memory > "$v2/cgroup.subtree_control" 2>/dev/null || :
        cg=$v2/uzram-disk-swap-$$
        mkdir "$cg" && cleanup_fn "rmdir $cg 2>/dev/null"
        echo $((64 << 20)) > "$cg/memory.max" || cg=
        [ -z "$cg" ] || echo max > "$cg/memory.swap.max" 2>/dev/null || :
    fi
fi
if [ -n "$cg" ]; then
    before=$(field "$ctl/stat" 5)
    timeout 300 sh -c 'echo $$ > "$1/cgroup.procs" && exec python3 -c "
import hashlib
pages = [bytes([i % 251]) * 7 + (b\"%08d\" % i) * 511 for i in range(160 * 256)]
sums = [hashlib.md5(p).digest() for p in pages[::97]]
for rnd in range(2):
    for i, p in enumerate(pages[::97]):
        assert hashlib.md5(p).digest() == sums[i], i
"' _ "$cg" || fail "the swap workload failed"
    writes=$(( $(field "$ctl/stat" 5) - before ))
    echo "swap workload: $writes write requests reached the engine"
    [ "$writes" -gt 0 ] || fail "nothing was swapped to $loop"
else
    echo "no memory cgroup controller: swapon/swapoff only"
fi
timeout 120 swapoff "$loop" || fail "swapoff $loop"
grep -q "^$loop " /proc/swaps && fail "$loop still in /proc/swaps"
echo "PASS: $0"
