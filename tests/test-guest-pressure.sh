#!/bin/bash
# Swap under global memory pressure, in a guest on Debian's kernel
# (guest-lib.sh) with 256 MiB of RAM and no cgroup: a workload touching
# twice that (PRESSURE_PERCENT, default 200, of the RAM) swaps through
# `uzram up --swap --via ublk` and, for reference, through the guest
# kernel's own zram.  Here nbdkit itself is short of memory, as it never
# is when only the workload is confined to a cgroup: a server that needs
# memory to free memory deadlocks.  (Before zsmalloc took its zspage
# headers from the reserve and the engine faulted its tables in at
# disksize, the ublk run stopped for good within a minute: its I/O thread
# touched a fresh page of malloc's or of the handle table, and waited for
# memory.  After that, about one run in six still stopped: a queue thread
# faulted on a fresh page of its stack, or of its ublk buffer.)  A process locked in memory writes the progress to the console
# every 30 s, with where the server's threads wait.  Each run
# must end within its bound (PRESSURE_BOUND, default 600 s) with every
# byte intact, and the guest's kernel must report no hung task (one
# blocked for its default 120 s).  The times are printed as ratios to
# zram's, not asserted.
# PRESSURE_PATHS (default "zram ublk") picks the paths; "nbd" and "disk"
# (a loop device over `disk`) run only when named, as both deadlock here
# in the kernel's side of the device, not in the server: nbdkit's reply
# on its socket needs a socket buffer that the kernel allocates as for any
# process, and the loop device's worker allocates FUSE's request for each
# swap write; once free memory is gone both wait on reclaim, which waits
# on them (nbdkit-zram-plugin(1), Swap, has the stacks).  The RAM is small
# because under TCG the time goes with what is swapped: about the size of
# the RAM, out and back in, through each path.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/guest-lib.sh"
in_guest --mem 256M --timeout "${PRESSURE_GUEST_TIMEOUT:-1500}"

workload=$top_builddir/tests/swap-workload
[ -x "$workload" ] || fail "$workload not built"
need_tool mkswap swapon swapoff
export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
bound=${PRESSURE_BOUND:-600}
ram_mib=$(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo)
# PRESSURE_PERCENT: the workload's size as a percentage of the RAM.
size=$(( ram_mib * ${PRESSURE_PERCENT:-200} / 100 ))
# Pages with 256 random bytes each compress to about a tenth: twice the
# RAM then fits in what the RAM has left, once compressed.
random=256
modprobe nbd || fail "modprobe nbd failed in the guest"
mkfifo "$tmpdir/tick" && exec {tick}<> "$tmpdir/tick" || fail "mkfifo"
# PRESSURE_HUNG_SECS: report blocked tasks sooner than the kernel's 120 s,
# to see a deadlock's stacks on the console while it lasts.
[ -n "${PRESSURE_HUNG_SECS:-}" ] && echo "$PRESSURE_HUNG_SECS" > /proc/sys/kernel/hung_task_timeout_secs
modprobe zram || fail "modprobe zram failed in the guest"
# Every progress line on the console (/dev/kmsg limits a process to ten
# lines in five seconds), and every sysrq from the keyboard
# (guest.sh's UZRAM_GUEST_MONITOR).
echo on > /proc/sys/kernel/printk_devkmsg
echo 1 > /proc/sys/kernel/sysrq
[[ " ${PRESSURE_PATHS:-ublk} " != *" ublk "* ]] || modprobe ublk_drv ||
    fail "modprobe ublk_drv failed in the guest"

# server_stacks NAME: where each of the server's threads is in the kernel.
server_stacks ()
{
    local pid t
    pid=$(cat "$UZRAM_RUN/pressure-$1/nbdkit.pid" 2>/dev/null) || return 0
    for t in /proc/"$pid"/task/*; do
        echo "-- nbdkit thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)), state $(awk '{ print $3 }' "$t/stat" 2>/dev/null), wchan $(cat "$t/wchan" 2>/dev/null)"
        cat "$t/stack" 2>/dev/null | head -n 25
    done
}
pswpout () { awk '$1 == "pswpout" { print $2 }' /proc/vmstat; }
declare -A took
# run_on NAME DEV: the workload with DEV the only swap.
run_on ()
{
    local name=$1 dev=$2 out0 t0 t1 rc=0 t=0 helpers=()
    grep -q "^$dev " /proc/swaps || fail "$name: $dev is not swapped on"
    [ "$(grep -c '^/' /proc/swaps)" = 1 ] || fail "$name: other swap is on: $(cat /proc/swaps)"
    # The progress, every 30 s, on the guest's console (the host has it as
    # it is written): from a process locked in memory and started before
    # the workload, as this shell may itself be swapped out and wait for
    # the very swap under test, and a program started under that pressure
    # may never get as far as locking itself.
    if command -v python3 >/dev/null; then
        python3 -c 'import ctypes, os, sys, time
ctypes.CDLL(None, use_errno=True).mlockall(3)
name = sys.argv[1]
def workload():
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and open("/proc/%s/comm" % p).read().strip() == "swap-workload": return p
        except OSError: pass
    return None
t0 = time.monotonic()
def grab(path, keys):
    out = []
    try:
        for l in open(path):
            f = l.split()
            if f[0].rstrip(":") in keys: out.append(f[0].rstrip(":") + " " + f[1])
    except OSError: pass
    return " ".join(out)
first = True
while True:
    # The first round runs at once, before the workload: the heap it
    # grows is there, locked, for every round after.
    if not first: time.sleep(30)
    first = False
    pid = workload()
    try: st = open("/proc/%s/stat" % pid).read().split(") ")[1].split()[0]
    except (OSError, TypeError): st = "-"
    msg = "pressure %s %d s: workload %s; %s; %s" % (name, time.monotonic() - t0, st,
        grab("/proc/vmstat", ("pswpin", "pswpout", "allocstall_normal", "pgmajfault", "oom_kill")),
        grab("/proc/meminfo", ("MemFree", "SwapFree", "Writeback", "AnonPages")))
    k = open("/dev/kmsg", "w")
    k.write(msg + "\n"); k.flush()
    # The server: the state of each thread and where it waits; the stacks of
    # those in D.
    try: spid = open(sys.argv[2]).read().split()[0]
    except (OSError, IndexError): continue
    try: tids = sorted(os.listdir("/proc/%s/task" % spid), key=int)
    except OSError: continue
    for tid in tids:
        base = "/proc/%s/task/%s/" % (spid, tid)
        try:
            st = open(base + "stat").read().split(") ")[1].split()[0]
            comm = open(base + "comm").read().strip()
            wchan = open(base + "wchan").read().strip()
        except OSError: continue
        k.write("pressure %s server %s %s %s %s\n" % (name, tid, comm, st, wchan)); k.flush()
        if st == "D":
            try: stack = open(base + "stack").read().split("\n")[:16]
            except OSError: stack = []
            k.write("pressure %s stack %s: %s\n" % (name, tid, " < ".join(x.split()[1] for x in stack if x.strip())[:900])); k.flush()' "$name" "$UZRAM_RUN/pressure-$name/nbdkit.pid" &
        helpers+=($!)
        cleanup_fn "kill $! 2>/dev/null"
        sleep 3                 # to be locked before the pressure starts
    fi
    # PRESSURE_HUNG_SECS also starts a watchdog, locked in memory, that
    # has the kernel print every task's stack (sysrq t) to the console
    # 90 s before the bound: a deadlocked guest's shell may never get
    # there itself.
    if [ -n "${PRESSURE_HUNG_SECS:-}" ] && command -v python3 >/dev/null; then
        python3 -c 'import ctypes, sys, time
ctypes.CDLL(None, use_errno=True).mlockall(3)
time.sleep(max(int(sys.argv[1]) - 90, 10))
open("/proc/sysrq-trigger", "w").write("t")' "$bound" &
        helpers+=($!)
        cleanup_fn "kill $! 2>/dev/null"
    fi
    out0=$(pswpout)
    t0=$(date +%s.%N)
    # Not `timeout`: a workload stuck in reclaim or on a page fault cannot
    # be killed, and waiting for it would never end.
    "$workload" "$size" 0 "$random" > "$tmpdir/$name.out" 2>&1 &
    local wpid=$!
    # Waits with bash's own read, not sleep: a fork and exec under this
    # pressure may wait on the very swap that is stuck.
    while kill -0 $wpid 2>/dev/null && [ $t -lt "$bound" ]; do
        read -r -t 1 -u "$tick" || :; t=$((t + 1))
    done
    if kill -0 $wpid 2>/dev/null; then
        cat "$tmpdir/$name.out"
        echo "$name: the workload is stuck; the guest's memory:"
        grep -E '^(MemFree|MemAvailable|Cached|SwapFree|Mlocked|AnonPages|Shmem|Dirty|Writeback):' /proc/meminfo
        grep -E '^(pswp|pgscan|pgsteal|allocstall|oom_kill|nr_free_pages )' /proc/vmstat
        server_stacks "$name"
        echo "$name: the guest kernel's blocked tasks:"
        echo w > /proc/sysrq-trigger
        dmesg | sed -n '/blocked for more than/,$p' | head -n 150
        fail "$name: the workload did not finish within $bound s"
    fi
    wait $wpid || rc=$?
    t1=$(date +%s.%N)
    kill "${helpers[@]}" 2>/dev/null
    cat "$tmpdir/$name.out"
    [ $rc = 0 ] || fail "$name: the workload failed (exit $rc): its data did not come back intact"
    grep -q "checked $((size * 256)) pages" "$tmpdir/$name.out" || fail "$name: not every page was checked"
    # At least half of what is over the RAM must have gone out.
    local out=$(( $(pswpout) - out0 ))
    [ "$out" -gt $(( (size - ram_mib) * 256 / 2 )) ] ||
        fail "$name: only $out pages swapped out: the workload did not press on the RAM"
    [ -z "$(hung_tasks)" ] || fail "$name: hung tasks in the guest: $(hung_tasks)"
    took[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    # Writes that found the reserve empty fail, and swap writes the page
    # again later (nbdkit-zram-plugin(1), mlock=true): how many did.
    local failed=
    [ -r "$UZRAM_RUN/pressure-$name/control/io_stat" ] &&
        failed=", failed_writes $(awk '{ print $2 }' "$UZRAM_RUN/pressure-$name/control/io_stat")"
    echo "$name: ${took[$name]} s, $out pages swapped out, RAM $ram_mib MiB, workload $size MiB$failed"
}

paths=${PRESSURE_PATHS:-zram ublk}
if [[ " $paths " = *" zram "* ]]; then
    echo "== the guest kernel's zram (lz4)"
    z=/sys/block/zram0
    echo lz4 > $z/comp_algorithm
    echo 1G > $z/disksize
    cleanup_fn "swapoff /dev/zram0 2>/dev/null; echo 1 > $z/reset"
    timeout 60 mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 || fail "swapon /dev/zram0"
    run_on zram /dev/zram0
    timeout "$bound" swapoff /dev/zram0 || fail "swapoff /dev/zram0"
    echo 1 > $z/reset
fi

for via in nbd disk ublk; do
    [[ " $paths " = *" $via "* ]] || continue
    echo "== uzram --via $via (lz4)"
    name=pressure-$via
    cleanup_fn "timeout 120 $uzram down $name"
    dev=$(timeout 120 "$uzram" up --size 1G --comp lz4 --swap --via $via --name $name) ||
        fail "uzram up --via $via failed"
    run_on "$via" "$dev"
    timeout "$bound" "$uzram" down "$name" || fail "uzram down $name failed"
done

echo "times: zram ${took[zram]:--} s, nbd ${took[nbd]:--} s, disk ${took[disk]:--} s, ublk ${took[ublk]:--} s"
awk -v z="${took[zram]:-0}" -v n="${took[nbd]:-0}" -v d="${took[disk]:-0}" -v u="${took[ublk]:-0}" 'BEGIN {
    if (z > 0 && n > 0) printf "nbd: %.2fx the time of the guest kernel'"'"'s zram\n", n / z
    if (z > 0 && d > 0) printf "disk: %.2fx the time of the guest kernel'"'"'s zram\n", d / z
    if (z > 0 && u > 0) printf "ublk: %.2fx the time of the guest kernel'"'"'s zram\n", u / z }'
echo "PASS: $0"
