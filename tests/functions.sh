# Shared by the shell tests: source "$top_srcdir/tests/functions.sh".
#
# - cleanup_fn CMD...     run CMD at exit, last registered first, also when
#                         the test fails or is interrupted.
# - need_tool TOOL...     a missing tool is a failure (scripts/install-deps.sh
#                         installs them all); tests never skip for a tool.
# - skip_test REASON      exit 77 (automake's skip): only for what this
#                         kernel lacks, with the reason printed.
# - start_zram ARGS...    a real nbdkit serving the plugin on a Unix socket,
#                         in the foreground of a background job, stopped at
#                         exit by its pid.  Sets $sock, $uri, $nbdkit_pid,
#                         $tmpdir.  Waits at most 20 s for it to come up.
# - $fill_to_limit_py     the mem_limit tests' Python set-up (below).
# - stop_nbdkit PID       SIGTERM, wait up to 10 s, then SIGKILL.
# - scripts/lib.sh's pid_alive, wait_for, stop_pid and is_mounted.
# - fail MSG              print and exit 1.
set -e
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PLUGIN:=$top_builddir/plugin/.libs/nbdkit-zram-plugin.so}"

# In a sanitizer build (tests/Makefile.am exports SANITIZERS) the plugin
# needs the sanitizer's runtime in nbdkit, which is not built with it:
# nbdkit_preload is that LD_PRELOAD; a wrapper on PATH applies it (below).
# gcc's runtimes preload into an uninstrumented program; clang 14's TSan
# runtime crashes when preloaded, so scripts/test.sh builds with gcc.
nbdkit_preload=
case "${SANITIZERS:-}" in
*address*) lib=asan ;;
*thread*)  lib=tsan ;;
*)         lib= ;;
esac
if [ -n "$lib" ]; then
    case "$("${CC:-gcc}" --version 2>/dev/null)" in
    *clang*) nbdkit_preload=$("${CC:-gcc}" -print-file-name=libclang_rt.$lib-x86_64.so) ;;
    *)       nbdkit_preload=$(readlink -f "$("${CC:-gcc}" -print-file-name=lib$lib.so)") ;;
    esac
    [ -f "$nbdkit_preload" ] || fail "no $lib runtime to preload into nbdkit for this sanitizer build"
fi
# A sanitizer's report fails the test: nbdkit exits non-zero, and the
# report is on stderr, which automake keeps in the test's .log.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

_cleanups=()
cleanup_fn () { _cleanups+=("$*"); }
_run_cleanups ()
{
    local rc=$? i
    set +e
    for (( i=${#_cleanups[@]}-1; i>=0; i-- )); do
        eval "${_cleanups[i]}"
    done
    exit $rc
}
trap _run_cleanups EXIT
trap 'echo "$0: interrupted" >&2; exit 130' INT TERM HUP

fail () { echo "FAIL: $0: $*" >&2; exit 1; }

need_tool ()
{
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            fail "needs '$t', which is not installed: run scripts/install-deps.sh"
    done
}

skip_test () { echo "SKIP: $0: $*"; exit 77; }

tmpdir=$(mktemp -d /tmp/uzram-test.XXXXXX)
cleanup_fn 'rm -rf "$tmpdir"'

# Every nbdkit a test starts, however (timeout, uzram, --run), gets the
# sanitizer's runtime: a wrapper first on PATH.
if [ -n "$nbdkit_preload" ]; then
    mkdir "$tmpdir/bin"
    # (Only nbdkit: TSan's runtime preloaded into the shell crashes it.)
    printf '#!/bin/sh\nLD_PRELOAD=%s\nexport LD_PRELOAD\nexec /usr/bin/nbdkit "$@"\n' \
        "$nbdkit_preload" > "$tmpdir/bin/nbdkit"
    chmod +x "$tmpdir/bin/nbdkit"
    PATH=$tmpdir/bin:$PATH
fi

. "$top_srcdir/scripts/lib.sh"

stop_nbdkit () { prog="$0: nbdkit" stop_pid "$1"; }

# Python for nbdsh -c, put before a test's own code: the mem_limit tests'
# set-up.  fill_to_limit(n, lo, hi, data) writes data(i) to blocks 0, 1 ...
# n-1 until one fails with ENOSPC, which must be block lo+1 to hi, and
# returns that block and {block: data} of those written.
fill_to_limit_py='
import errno
def fill_to_limit(n, lo, hi, data):
    written = {}
    for i in range(n):
        d = data(i)
        try:
            h.pwrite(d, i * 4096)
        except nbd.Error as e:
            assert e.errnum == errno.ENOSPC, (i, e)
            assert lo < i <= hi, i
            return i, written
        written[i] = d
    raise AssertionError("%d blocks fitted under mem_limit" % n)
'


# start_zram [nbdkit options --] plugin args...
# Options before a literal -- go to nbdkit (e.g. -D zram.stats=1); without
# --, every argument is the plugin's.
_nstart=0
start_zram ()
{
    local nbdkit_opts=() a
    if printf '%s\n' "$@" | grep -qx -- '--'; then
        while [ $# -gt 0 ]; do
            a=$1; shift
            [ "$a" = -- ] && break
            nbdkit_opts+=("$a")
        done
    fi
    _nstart=$((_nstart+1))
    sock=$tmpdir/nbd$_nstart.sock
    local pidfile=$tmpdir/nbdkit$_nstart.pid
    nbdkit -f --exit-with-parent -U "$sock" -P "$pidfile" \
        "${nbdkit_opts[@]}" "$PLUGIN" "$@" &
    nbdkit_pid=$!
    cleanup_fn "stop_nbdkit $nbdkit_pid"
    local i
    for (( i=0; i<200; i++ )); do
        [ -s "$pidfile" ] && [ -S "$sock" ] && break
        kill -0 "$nbdkit_pid" 2>/dev/null || fail "nbdkit exited at start-up: $*"
        sleep 0.1
    done
    [ -S "$sock" ] || fail "nbdkit did not come up in 20 s: $*"
    uri="nbd+unix:///?socket=$sock"
}

# --- memory cgroups (v1 or v2) for swap workloads ---
# cg_create LIMIT_BYTES: makes a memory cgroup with that limit, removed at
# exit; sets $cg.  cg_run CMD...: runs CMD alone in it (the shell that
# execs CMD joins the cgroup; nbdkit and the test stay outside).
cg=
cg_create ()
{
    local limit=$1 v2
    if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
        cg=/sys/fs/cgroup/memory/uzram-test-$$
        mkdir "$cg" || fail "cannot create the memory cgroup $cg"
        cleanup_fn 'cg_remove'
        echo "$limit" > "$cg/memory.limit_in_bytes"
        echo 100 > "$cg/memory.swappiness" 2>/dev/null || :
        return 0
    fi
    v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    if [ -n "$v2" ] && grep -qw memory "$v2/cgroup.controllers" 2>/dev/null; then
        echo +memory > "$v2/cgroup.subtree_control" 2>/dev/null || :
        cg=$v2/uzram-test-$$
        mkdir "$cg" || fail "cannot create the memory cgroup $cg"
        cleanup_fn 'cg_remove'
        echo "$limit" > "$cg/memory.max"
        echo max > "$cg/memory.swap.max" 2>/dev/null || :
        return 0
    fi
    skip_test "this kernel has no memory cgroup controller (v1 or v2)"
}
cg_run () { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
cg_remove ()
{
    [ -n "$cg" ] && [ -d "$cg" ] || return 0
    local p
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    timeout 10 sh -c 'while ! rmdir "$0" 2>/dev/null; do sleep 0.2; done' "$cg" ||
        echo "$0: could not remove cgroup $cg" >&2
}
