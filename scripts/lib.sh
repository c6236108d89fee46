# Shell helpers shared by scripts/uzram, the tests (tests/functions.sh) and
# the benchmarks (fio-jobs/bench-lib.sh): source it with bash.  Messages
# start with $prog where it is set.
#
# - pid_alive PID          the process exists and is not a zombie (a killed
#                          process stays one until its parent reaps it)
# - wait_for SECS CMD...   until CMD succeeds, at most SECS seconds
# - stop_pid PID [SECS]    SIGTERM, then SIGKILL after SECS (10) seconds;
#                          reaps it if it is our child
# - is_mounted DIR         DIR is a mount point (/proc/mounts)

pid_alive ()
{
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

wait_for ()
{
    local i
    for (( i = 0; i < $1 * 10; i++ )); do "${@:2}" && return 0; sleep 0.1; done
    return 1
}

stop_pid ()
{
    local pid=$1 secs=${2:-10}
    kill -TERM "$pid" 2>/dev/null || return 0
    if ! wait_for "$secs" eval "! pid_alive $pid"; then
        echo "${prog:-${0##*/}}: pid $pid ignored SIGTERM for $secs s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

is_mounted () { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
