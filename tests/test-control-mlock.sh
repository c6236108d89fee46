#!/bin/bash
# Memory given back under mlock=on (what `uzram up --swap` runs with):
# write 300 MiB of random data, trim every other 64 KiB, compact; nbdkit's
# RssAnon must then have grown by about mem_used_total (within 1.10x), as
# without mlock.  Under mlockall, plain MADV_DONTNEED fails on every freed
# page, and the process would keep all 300 MiB.  Both runs' ratios are
# printed: the one without mlock is the yardstick.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

case "${SANITIZERS:-}" in
*address*|*thread*) skip_test "a sanitizer's shadow memory moves RssAnon with the pool's" ;;
esac

rss_anon () { awk '/^RssAnon:/ { print $2 * 1024 }' "/proc/$1/status"; }

# measure MLOCK: sets $growth, $used and $ratio
measure ()
{
    start_ctl size=512M mlock="$1"
    local base after prev i
    # mlock=on keeps a reserve of pages for swap writes (zs_set_reserve),
    # faulted in from the first write on and held for good: part of the
    # baseline, not of what the data costs.  One block written, then the
    # baseline once RssAnon stands still.  (Random, as a same-filled block
    # would allocate nothing.)
    timeout 60 nbdsh -u "$uri" -c 'import os; h.pwrite(os.urandom(4096), 0)' || fail "mlock=$1: the first write failed"
    base=$(rss_anon "$nbdkit_pid")
    for (( i = 0; i < 50; i++ )); do
        sleep 0.1
        prev=$base base=$(rss_anon "$nbdkit_pid")
        [ "$base" = "$prev" ] && break
    done
    timeout 300 nbdsh -u "$uri" -c '
import os
M = 1024 * 1024
for off in range(0, 300 * M, 4 * M):
    h.pwrite(os.urandom(4 * M), off)
# Every other 64 KiB: half of each zspage-sized neighbourhood goes, so
# the pages freed are scattered and no 2 MiB chunk empties whole.
for off in range(0, 300 * M, 128 * 1024):
    h.trim(64 * 1024, off)
' || fail "mlock=$1: the writes or trims failed"
    expect_ok "$ctl/compact" 1
    # Under mlock=on the reserve's thread gives freed pages back, shortly
    # after (pagesrc.c): the figure is RssAnon once it stands still.
    after=$(rss_anon "$nbdkit_pid")
    for (( i = 0; i < 50; i++ )); do
        sleep 0.2
        prev=$after after=$(rss_anon "$nbdkit_pid")
        [ "$after" = "$prev" ] && break
    done
    used=$(field "$ctl/mm_stat" 3)
    [ "$used" -gt $((140 * 1024 * 1024)) ] ||
        fail "mlock=$1: mem_used_total $used after trimming half of 300 MiB"
    stop_nbdkit "$nbdkit_pid"
    wait_unmounted "$ctl"
    growth=$((after - base))
    ratio=$(awk -v g=$growth -v u="$used" 'BEGIN { printf "%.3f", g / u }')
}

measure off
echo "mlock=off: RssAnon grew $growth bytes for mem_used_total $used: ${ratio}x"
off_ratio=$ratio
measure on
echo "mlock=on:  RssAnon grew $growth bytes for mem_used_total $used: ${ratio}x"
awk -v r="$ratio" 'BEGIN { exit !(r <= 1.10) }' ||
    fail "under mlock=on RssAnon grew ${ratio}x mem_used_total (without mlock: ${off_ratio}x); freed memory is not given back"
