# Shared by run-bench.sh, run-bench-local.sh and bench-swap.sh: source it
# after setting $here (this folder) and $prog (the name messages start
# with).  Sets the shell's options and environment, $src, $top_builddir
# and $PLUGIN, and defines die, log, wait_for and stop_pid.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

src=$(cd "$here/.." && pwd)
: "${top_builddir:=$src/build}"
: "${PLUGIN:=$top_builddir/plugin/.libs/nbdkit-zram-plugin.so}"

die () { echo "$prog: $*" >&2; exit 1; }
log () { echo "$prog: $*" >&2; }

# wait_for SECS CMD...: until CMD succeeds, at most SECS seconds.
wait_for ()
{
    local i
    for (( i = 0; i < $1 * 10; i++ )); do "${@:2}" && return 0; sleep 0.1; done
    return 1
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s; reaps it.
stop_pid ()
{
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for (( i=0; i<100; i++ )); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for 10 s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
