# The plugin tests' helpers, sourced after functions.sh.
#
# - start_zram_logged ARGS...  start_zram with -v -D zram.stats=1 and
#                              nbdkit's stderr in $zlog, so the statistics
#                              printed at each connection close can be read
#                              before the control filesystem exists.
# - wait_close [N]             wait (at most 10 s) until N more connections
#                              (default 1) have closed and printed stats.
# - stat_of NAME               a counter from the last stats line, e.g.
#                              stat_of same_pages; also orig_data_size,
#                              mem_used_total, mem_used_max, disksize.
# - last_mm_stat               the last mm_stat line's nine fields.
# - nbdsh_py CODE              nbdsh -u "$uri" -c CODE, bounded by timeout.

zlog=
_closes=0

start_zram_logged ()
{
    zlog=$tmpdir/nbdkit-$((_nstart + 1)).log
    _closes=0
    start_zram -v -D zram.stats=1 -- "$@" 2>"$zlog"
    cleanup_fn '[ "$rc" -ne 0 ] && [ -f "'"$zlog"'" ] && { echo "--- nbdkit log (errors and stats):"; grep -E "error|stats:|mm_stat:" "'"$zlog"'" | tail -20; }'
}

wait_close ()
{
    local want=$((_closes + ${1:-1})) n i
    for (( i=0; i<100; i++ )); do
        n=$(grep -c ': close: stats:' "$zlog" || true)
        if [ "$n" -ge "$want" ]; then
            _closes=$n
            return 0
        fi
        sleep 0.1
    done
    fail "expected $want connection closes in $zlog, saw $n"
}

stat_of ()
{
    local v
    v=$(grep ': close: stats:' "$zlog" | tail -1 | tr ' ' '\n' | sed -n "s/^$1=//p")
    [ -n "$v" ] || fail "no statistic '$1' in $zlog"
    echo "$v"
}

last_mm_stat ()
{
    grep ': close: mm_stat:' "$zlog" | tail -1 | sed 's/.*mm_stat: *//'
}

# expect_stat NAME VALUE
expect_stat ()
{
    local v
    v=$(stat_of "$1")
    [ "$v" = "$2" ] || fail "$1 is $v, expected $2"
}

nbdsh_py ()
{
    timeout 120 nbdsh -u "$uri" -c "$1"
}
