#!/bin/bash
# valgrind memcheck over a short workload: nbdkit serving the plugin with
# its control filesystem, I/O of every kind, the control files read and
# written, then SIGTERM.  Any error fails, and so does a definite leak
# allocated by the plugin (nbdkit 1.32 itself leaks a connection's 280
# bytes at exit, with no plugin frame in the stack: that one is not ours).
source "$top_srcdir/tests/functions.sh"
need_tool valgrind nbdsh
case "${SANITIZERS:-}" in *sanitize*) skip_test "valgrind and sanitizers don't mix; this runs in the plain build" ;; esac
mkdir "$tmpdir/ctl"
sock=$tmpdir/vg.sock
valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=none \
    --show-leak-kinds=definite --trace-children=no --log-file="$tmpdir/vg.log" \
    nbdkit -f --exit-with-parent -U "$sock" "$PLUGIN" size=64M control="$tmpdir/ctl" &
vg=$!
cleanup_fn "kill $vg 2>/dev/null; mountpoint -q $tmpdir/ctl && umount -l $tmpdir/ctl"
for i in $(seq 300); do [ -S "$sock" ] && [ -e "$tmpdir/ctl/mm_stat" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$tmpdir/vg.log"; fail "nbdkit under valgrind did not start"; }
timeout 300 nbdsh --base-allocation -u "nbd+unix:///?socket=$sock" -c '
import os
h.pwrite(os.urandom(65536) + bytes(65536) + b"abcdefgh" * 8192, 4096 * 3 + 17)
h.pread(300000, 0)
h.trim(1 << 20, 0)
h.zero(5000, 100000)
h.flush()
h.block_status(1 << 20, 0, lambda *a: 0)
'
cat "$tmpdir/ctl/mm_stat" "$tmpdir/ctl/io_stat" "$tmpdir/ctl/stat" "$tmpdir/ctl/classes" >/dev/null
echo 1 > "$tmpdir/ctl/compact"
echo 0 > "$tmpdir/ctl/mem_used_max"
echo 1 > "$tmpdir/ctl/reset"
echo 32M > "$tmpdir/ctl/disksize"
timeout 120 nbdsh -u "nbd+unix:///?socket=$sock" -c 'h.pwrite(b"z" * 4096, 0)'
kill -TERM $vg
rc=0; wait $vg || rc=$?
cat "$tmpdir/vg.log"
[ $rc = 0 ] || fail "valgrind found errors (exit $rc)"
# Loss records are separated by blank "==PID== " lines.
awk '/definitely lost in loss record/ { rec = 1; buf = "" } rec { buf = buf $0 "\n" }
     rec && /^==[0-9]+== $/ { if (buf ~ /zram-plugin|zsmalloc|engine|control/) { printf "%s", buf; bad = 1 } rec = 0 }
     END { exit bad }' "$tmpdir/vg.log" || fail "the plugin leaked memory"
echo OK
