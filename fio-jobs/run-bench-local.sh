#!/bin/bash
# The local block-device benchmark (issues 7 and 17): the ways to get a
# block device or a fast NBD path from uzram on one machine, side by side
# with the kernel's zram, as medians over repetitions with ratios to the
# kernel's zram, to the loop device over `disk` and to nbdfuse; then the
# swap workload (bench-swap.sh) through each block device.  Separate from
# run-bench.sh (issue 5's runner, which compares NBD servers) so that each
# can change without the other.
#
#   fio-jobs/run-bench-local.sh [options]
#
#   --contenders L   comma-separated, from (default ublk,disk,knbd,nbd,
#                    nbdfuse,kzram; those this kernel lacks are skipped,
#                    saying why):
#                    ublk     the plugin's own /dev/ublkbN (ublk=on), fio
#                             libaio on it; needs ublk_drv (Linux 6.0+)
#                    disk     a loop device (--direct-io=on) over the
#                             plugin's DIR/disk, fio libaio on it
#                    knbd     the kernel's /dev/nbdN, nbd-client talking
#                             NBD to the plugin over its socket; needs the
#                             nbd module and nbd-client
#                    nbd      fio's nbd engine straight to the plugin
#                    nbdfuse  a loop device (--direct-io=on) over nbdfuse's
#                             DIR/nbd, nbdfuse talking NBD to the same plugin
#                    kzram    the kernel's /dev/zram0 (--comp), fio libaio
#                             (reset afterwards, also when interrupted;
#                             skipped unless zram0 is free)
#                    classic  as disk, but with uring=off: the control
#                             filesystem on /dev/fuse even where the
#                             kernel offers FUSE over io_uring (disk
#                             uses it then: see enable_uring below)
#                    disk2    as disk, but with uring_threads=2: two
#                             threads (io_urings) per CPU instead of one
#                    ublk-tags  as ublk, but with per-tag buffers
#                             (-D zram.ublk_tag_buffers=1) where the kernel
#                             has user copy: the two ways to move the data
#                    base     as disk, but with the plugin given by --base
#                             (added to the default list when --base is
#                             given): before and after a change, in one run
#                    ublk-base  as ublk, with the plugin given by --base
#   --jobs L         job names in fio-jobs/ (default randread-4k-qd1,
#                    randwrite-4k-qd1,randread-4k-qd16,randwrite-4k-qd16,
#                    seqread-128k,seqwrite-128k)
#   --reps N         repetitions (3); each runs every job on every
#                    contender, the contenders' order rotating each time
#   --runtime S --ramp S   per job (10, 1)
#   --size SIZE      the region fio works on (256M); --disk SIZE the
#                    device (1G)
#   --comp ALG       the compressor of every contender, the kernel's and
#                    the plugin's (default lzo where the kernel's zram has
#                    it, else lz4: Debian 12's 6.12 kernel lists no lzo)
#   --swap S:L|none  the swap workload after the fio jobs: S MiB in a
#                    memory cgroup of L MiB (default 512:128), through
#                    `uzram up --swap --via` each of ublk, disk and nbd that
#                    is among the contenders, and the kernel's zram;
#                    --swap-reps N (default --reps)
#   --base PLUGIN    another build of the plugin, for base and ublk-base
#   --tsv FILE       also keep the raw figures
#   --guest          run all this in a guest on Debian's 6.12 kernel
#                    (scripts/guest.sh, which has ublk, nbd and zram where
#                    this kernel may not); --guest-mem SIZE (1G),
#                    --guest-timeout SECS (7200).  Under TCG everything is
#                    slower: take ratios only.
#
# Besides IOPS and bandwidth each figure has the mean latency (submission
# plus completion) and, from /proc/stat sampled during the measured job,
# the CPU time (all CPUs, user / system with interrupts) and the context
# switches per request: where the time of a request goes.
#
# disk uses FUSE over io_uring where /sys/module/fuse/parameters/
# enable_uring is Y (this script leaves it as it is, and says which);
# compare with classic in the same run.
#
# Needs root (loop devices, ublk, nbd, the kernel's zram), nbdkit,
# nbdfuse, losetup, fio.  PLUGIN defaults to
# $top_builddir/plugin/.libs/nbdkit-zram-plugin.so (top_builddir: build/
# in the source tree).  Every server is fresh for each run, and torn down
# after it, also when interrupted: the loop device losetup gave us
# detached, nbd-client disconnected, nbdfuse's mount unmounted, nbdfuse
# and nbdkit stopped by pid (nbdkit unmounts its control filesystem and
# deletes its ublk device), zram0 reset.
#
# Expect (issue 7's goals): disk at least 3x nbdfuse's IOPS and at least
# 0.5x the kernel zram's.  Issue 17's, for ublk: 4 KiB depth-16 IOPS at
# least 0.7x the kernel zram's, depth-1 latency at most 3x the kernel
# zram's and at least 3x better than disk's, the swap workload in at most
# 1.5x the kernel zram's time; the report ends with these ratios.
# fio-jobs/README.md keeps what it measured.
here=$(cd "$(dirname "$0")" && pwd)
prog=run-bench-local
source "$here/bench-lib.sh"   # set -euo pipefail, $src, $PLUGIN, die, log, wait_for, stop_pid

all_args=("$@")
contenders=ublk,disk,knbd,nbd,nbdfuse,kzram
jobs=randread-4k-qd1,randwrite-4k-qd1,randread-4k-qd16,randwrite-4k-qd16,seqread-128k,seqwrite-128k
reps=3 runtime=10 ramp=1 size=256M disk=1G tsv= base= contenders_given=no
comp= swap=512:128 swap_reps= guest=no guest_mem=1G guest_timeout=7200
while [ $# -gt 0 ]; do
    case $1 in
        --contenders) contenders=$2; contenders_given=yes; shift ;;
        --base) base=$2; shift ;;
        --jobs) jobs=$2; shift ;;
        --reps) reps=$2; shift ;;
        --runtime) runtime=$2; shift ;;
        --ramp) ramp=$2; shift ;;
        --size) size=$2; shift ;;
        --disk) disk=$2; shift ;;
        --comp) comp=$2; shift ;;
        --swap) swap=$2; shift ;;
        --swap-reps) swap_reps=$2; shift ;;
        --tsv) tsv=$2; shift ;;
        --guest) guest=yes ;;
        --guest-mem) guest_mem=$2; shift ;;
        --guest-timeout) guest_timeout=$2; shift ;;
        -h|--help) sed -n '2,/^here=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
case $reps in ''|*[!0-9]*|0) die "--reps must be a positive number";; esac
: "${swap_reps:=$reps}"
case $swap_reps in ''|*[!0-9]*|0) die "--swap-reps must be a positive number";; esac
case $swap in none) ;; *[0-9]:[0-9]*) ;; *) die "--swap takes SIZE_MIB:LIMIT_MIB or none, not '$swap'" ;; esac

# --guest: the same command again, in a guest; its report comes back on
# stdout.  The guest shares this checkout and the build folder.
if [ $guest = yes ]; then
    args=()
    for a in "${all_args[@]}"; do [ "$a" = --guest ] || args+=("$a"); done
    export top_builddir PLUGIN
    exec "$src/scripts/guest.sh" --mem "$guest_mem" --timeout "$guest_timeout" \
        -- bash "$here/run-bench-local.sh" "${args[@]}"
fi

[ -n "$base" ] && [ $contenders_given = no ] && contenders=ublk,disk,base,knbd,nbd,nbdfuse,kzram
for c in ${contenders//,/ }; do
    case $c in ublk|ublk-tags|disk|disk2|classic|knbd|nbdfuse|nbd|kzram) ;;
        base|ublk-base) [ -f "$base" ] || die "the $c contender needs --base PLUGIN" ;;
        *) die "unknown contender '$c'";; esac
done
for j in ${jobs//,/ }; do [ -f "$here/$j.fio" ] || die "no job fio-jobs/$j.fio"; done
[ "$(id -u)" = 0 ] || die "needs root (loop devices, ublk, nbd, zram)"
for t in nbdkit nbdfuse losetup fio fusermount3 python3; do
    command -v $t >/dev/null || die "needs $t: run scripts/install-deps.sh"
done
[ -f "$PLUGIN" ] || die "$PLUGIN is not built (scripts/build.sh, or set PLUGIN=)"

tmp=$(mktemp -d /tmp/uzram-bench-local.XXXXXX)
mkdir -p "$tmp/fio" "$tmp/kjobs" "$tmp/log"
raw=$tmp/raw.tsv
: > "$raw"

# --- clean-up: only what this script started --------------------------------
srv_pid= fuse_pid= loopdev= nbddev= fusedir= zram_used=no sampler_pid=
teardown ()
{
    set +e
    [ -n "$sampler_pid" ] && { kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null; }
    sampler_pid=
    [ -n "$loopdev" ] && { losetup -d "$loopdev" || log "could not detach $loopdev"; }
    loopdev=
    [ -n "$nbddev" ] && { timeout 30 nbd-client -d "$nbddev" >/dev/null 2>&1 || log "could not disconnect $nbddev"; }
    nbddev=
    if [ -n "$fuse_pid" ]; then
        fusermount3 -u "$fusedir" 2>/dev/null
        stop_pid "$fuse_pid"
        fuse_pid=
    fi
    [ -n "$srv_pid" ] && stop_pid "$srv_pid"
    srv_pid=
    if [ $zram_used = yes ]; then
        echo 1 > /sys/block/zram0/reset || log "could not reset /dev/zram0"
        zram_used=no
    fi
    set -e
}
trap 'rc=$?; teardown; rm -rf "$tmp"; exit $rc' EXIT
trap 'log interrupted; exit 130' INT TERM HUP

# --- what this kernel has -----------------------------------------------------
drop () { contenders=$(echo ",$contenders," | sed "s/,$1,/,/; s/^,//; s/,\$//"); }
has_ublk () { [ -e /dev/ublk-control ] || modprobe ublk_drv 2>/dev/null; }
has_nbd () { command -v nbd-client >/dev/null && { [ -e /sys/module/nbd ] || modprobe nbd 2>/dev/null; }; }
for c in ublk ublk-tags ublk-base; do
    [[ ,$contenders, == *,$c,* ]] && ! has_ublk && { log "$c skipped: this kernel has no ublk (ublk_drv)"; drop $c; }
done
[[ ,$contenders, == *,knbd,* ]] && ! has_nbd && { log "knbd skipped: no nbd module or no nbd-client"; drop knbd; }
[ -e /sys/block/zram0 ] || modprobe zram 2>/dev/null || :
if [[ ,$contenders, == *,kzram,* ]] &&
   ! { [ -w /sys/block/zram0/reset ] && [ "$(cat /sys/block/zram0/disksize)" = 0 ]; }; then
    log "kzram skipped: /dev/zram0 missing or in use"
    drop kzram
fi
# One compressor for all: lzo where the kernel's zram has it.
if [ -z "$comp" ]; then
    comp=lzo
    [ -r /sys/block/zram0/comp_algorithm ] &&
        ! grep -qw 'lzo\|\[lzo\]' /sys/block/zram0/comp_algorithm && comp=lz4
fi
[ -n "$contenders" ] || die "no contender left"

# The block-device variant of each job, as run-bench.sh makes it.
for j in ${jobs//,/ }; do
    sed 's/^ioengine=nbd$/ioengine=libaio\ndirect=1/; s/^uri=\${uri}$/filename=${filename}/' \
        "$here/$j.fio" > "$tmp/kjobs/$j.fio"
done

# sample FILE: every quarter second, the time (us) and /proc/stat's cpu
# line and ctxt, until killed; builtins only, so that it costs little.
mkfifo "$tmp/never"
sample ()
{
    local l c fd
    exec {fd}<> "$tmp/never"
    while :; do
        mapfile -t l < /proc/stat
        for c in "${l[@]}"; do [[ $c == ctxt* ]] && break; done
        echo "${EPOCHREALTIME/./} ${l[0]#cpu } ${c#ctxt }"
        read -t 0.25 -u $fd || :
    done > "$1"
}

# start CONTENDER N: brings it up and sets $uri or $dev.
start ()
{
    local c=$1 n=$2 sock=$tmp/s$2.sock
    uri= dev=
    if [ $c = kzram ]; then
        zram_used=yes
        echo "$comp" > /sys/block/zram0/comp_algorithm
        echo "$disk" > /sys/block/zram0/disksize
        dev=/dev/zram0
        return 0
    fi
    local plugin=$PLUGIN
    case $c in base|ublk-base) plugin=$base ;; esac
    # Twice the CPUs, as uzram up and run-bench.sh run it.
    local args=(-f -U "$sock" --threads $(( 2 * $(nproc) )))
    [ $c = ublk-tags ] && args+=(-D zram.ublk_tag_buffers=1)
    args+=("$plugin" size="$disk" comp_algorithm="$comp")
    case $c in disk|disk2|base|classic) args+=(control="$tmp/ctl$n") ;; esac
    case $c in ublk|ublk-tags|ublk-base) args+=(ublk=on) ;; esac
    [ $c = classic ] && args+=(uring=off)
    [ $c = disk2 ] && args+=(uring_threads=2)
    nbdkit "${args[@]}" 2>"$tmp/log/nbdkit-$n.log" &
    srv_pid=$!
    wait_for 20 test -S "$sock" || { log "nbdkit did not start: $(tail -2 "$tmp/log/nbdkit-$n.log")"; return 1; }
    case $c in
        nbd) uri="nbd+unix:///?socket=$sock" ;;
        disk|disk2|base|classic)
            wait_for 20 test -f "$tmp/ctl$n/disk" || return 1
            loopdev=$(losetup --direct-io=on --find --show "$tmp/ctl$n/disk")
            dev=$loopdev ;;
        ublk|ublk-tags|ublk-base)
            # nbdkit's /dev/ublkcN names the block device.
            local f l i
            for (( i=0; i<200; i++ )); do
                for f in /proc/$srv_pid/fd/*; do
                    l=$(readlink "$f" 2>/dev/null) || continue
                    [[ $l == /dev/ublkc[0-9]* ]] && [ -b "/dev/ublkb${l#/dev/ublkc}" ] &&
                        { dev=/dev/ublkb${l#/dev/ublkc}; break; }
                done
                [ -n "$dev" ] && break
                sleep 0.1
            done
            [ -n "$dev" ] || { log "no ublk device: $(tail -2 "$tmp/log/nbdkit-$n.log")"; return 1; } ;;
        knbd)
            local b
            for b in /sys/block/nbd*; do
                [ "$(cat "$b/size")" = 0 ] && { nbddev=/dev/${b##*/}; break; }
            done
            [ -n "$nbddev" ] || { log "no free /dev/nbdN"; return 1; }
            timeout 30 nbd-client -unix "$sock" "$nbddev" -b 4096 >/dev/null ||
                { log "nbd-client failed on $nbddev"; nbddev=; return 1; }
            dev=$nbddev ;;
        nbdfuse)
            fusedir=$tmp/fuse$n
            mkdir -p "$fusedir"
            nbdfuse "$fusedir" --unix "$sock" >"$tmp/log/nbdfuse-$n.log" 2>&1 &
            fuse_pid=$!
            wait_for 20 test -f "$fusedir/nbd" || { log "nbdfuse did not start"; return 1; }
            loopdev=$(losetup --direct-io=on --find --show "$fusedir/nbd")
            dev=$loopdev ;;
    esac
}

n=0
list=(${contenders//,/ })
for (( rep=1; rep<=reps; rep++ )); do
    for j in ${jobs//,/ }; do
        for (( k=0; k<${#list[@]}; k++ )); do
            c=${list[$(( (k + rep - 1) % ${#list[@]} ))]}     # rotate the order
            n=$((n+1))
            log "rep $rep/$reps: $j: $c"
            json=$tmp/fio/$n.json jf=$here/$j.fio
            [ $c != nbd ] && jf=$tmp/kjobs/$j.fio
            figs="- - - nostart"
            if start $c $n; then
                sample "$tmp/fio/$n.stat" &
                sampler_pid=$!
                if ( cd "$tmp/fio" && uri=$uri filename=$dev size=$size runtime=$runtime ramp=$ramp \
                        timeout $(( 300 + 2 * runtime )) fio --output-format=json --output="$json" "$jf" \
                        >"$tmp/log/fio-$n.out" 2>&1 ); then
                    kill $sampler_pid; wait $sampler_pid 2>/dev/null || :; sampler_pid=
                    figs=$("$here/bench-report.py" fio-cpu "$json" "$j" "$tmp/fio/$n.stat" "$(getconf CLK_TCK)")
                else
                    figs="- - - fio-failed"
                    log "fio $j on $c failed: $(tail -2 "$tmp/log/fio-$n.out" | tr '\n' ' ')"
                fi
            fi
            teardown
            printf '%s\t%s\t%s\t%s\n' "$c" "$j" "$rep" "$(echo $figs | tr ' ' '\t')" >> "$raw"
        done
    done
done

# The swap workload, through the block devices among the contenders.
swap_raw=$tmp/swap.tsv
: > "$swap_raw"
if [ "$swap" != none ]; then
    paths=kzram
    for c in ublk disk; do [[ ,$contenders, == *,$c,* ]] && paths+=" $c"; done
    [[ ,$contenders, == *,knbd,* ]] && paths+=" nbd"
    if [[ ,$contenders, != *,kzram,* ]]; then
        log "swap workload skipped: it needs the kernel's zram, its reference"
    else
        log "swap workload (${swap%:*} MiB in ${swap#*:} MiB): $paths"
        PATHS=$paths COMP=$comp SWAP_TSV=$swap_raw PLUGIN=$PLUGIN \
            "$here/bench-swap.sh" "${swap%:*}" "${swap#*:}" "$swap_reps" > "$tmp/swap.md" ||
            log "the swap workload failed (bench-swap.sh, above); the fio figures stand"
    fi
fi
[ -n "$tsv" ] && cp "$raw" "$tsv" && { [ -s "$swap_raw" ] && cp "$swap_raw" "$tsv.swap" || :; }

# Under qemu's TCG the CPU is "QEMU TCG CPU" or the like: say which.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
where=; [ -n "${UZRAM_GUEST:-}" ] && where=", in a scripts/guest.sh guest"
echo "# uzram local block devices: $(date -u '+%Y-%m-%d %H:%M UTC'), Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)$where"
echo "# CPU: $cpu"
echo "# FUSE over io_uring (enable_uring): $(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo absent); compressor $comp for every contender"
echo "# $reps rep(s), ${runtime} s after ${ramp} s warm-up, $size regions of $disk devices; medians (min-max)"
echo "# lat: mean, submission + completion; CPU: all CPUs' busy time per request (user/system+irq); ctx: context switches per request"
python3 - "$raw" "$contenders" "$jobs" "$swap_raw" "$swap" <<'PYEOF'
import statistics, sys
raw, contenders, jobs, swap_raw, swap = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(','), sys.argv[4], sys.argv[5]
figs = {}
for line in open(raw):
    f = line.rstrip('\n').split('\t')
    c, j, rep, mbps, iops, p99, status = f[:7]
    rest = f[7:] + ['-'] * (5 - len(f[7:]))
    if status == 'ok':
        figs.setdefault((c, j), []).append([float(iops), float(mbps)] +
                                           [float(x) if x != '-' else None for x in rest[:5]])
def med(c, j, i):
    v = [x[i] for x in figs.get((c, j), []) if x[i] is not None]
    return (statistics.median(v), min(v), max(v)) if v else None
refs = [r for r in ('kzram', 'disk', 'nbdfuse') if r in contenders]
print('| job | contender | IOPS | MB/s | lat us | CPU us/req (usr/sys) | ctx/req |' +
      ''.join(' x %s |' % r for r in refs))
print('| --- | --- | ---: | ---: | ---: | ---: | ---: |' + ' ---: |' * len(refs))
def f(v, d=0):
    return '-' if v is None else '%.*f' % (d, v[0])
for j in jobs:
    for c in contenders:
        m = med(c, j, 0)
        if m is None:
            print('| %s | %s | - | - | - | - | - |' % (j, c) + ' |' * len(refs)); continue
        lat, cpu, usr, sys_, ctx = (med(c, j, i) for i in range(2, 7))
        cells = []
        for r in refs:
            b = med(r, j, 0)
            # IOPS ratio; at depth 1 also the latency ratio (lower is better).
            if b is None or c == r:
                cells.append('')
            elif j.endswith('qd1') and lat and med(r, j, 2):
                cells.append('%.2f (lat %.2f)' % (m[0] / b[0], lat[0] / med(r, j, 2)[0]))
            else:
                cells.append('%.2f' % (m[0] / b[0]))
        print('| %s | %s | %.0f (%.0f-%.0f) | %.0f | %s | %s (%s/%s) | %s |' % (
            j, c, m[0], m[1], m[2], med(c, j, 1)[0], f(lat, 1), f(cpu, 1), f(usr, 1), f(sys_, 1), f(ctx, 2)) +
            ''.join(' %s |' % x for x in cells))

swaps = {}
for line in open(swap_raw):
    via, rep, secs, mm, hwm = line.split()[:5]
    swaps.setdefault(via, [])
    if secs != '-':
        swaps[via].append(float(secs))
if swaps:
    size, limit = swap.split(':')
    print()
    print('Swap workload (bench-swap.sh): %s MiB in a %s MiB memory cgroup, 2 passes plus a check; medians (min-max)' % (size, limit))
    print()
    print('| path | wall s | x kzram |')
    print('| --- | ---: | ---: |')
    for via in ('kzram', 'ublk', 'disk', 'nbd'):
        if via in swaps and not swaps[via]:
            print('| %s | failed | |' % via)
        elif via in swaps:
            t = swaps[via]
            k = statistics.median(swaps['kzram']) if swaps.get('kzram') else None
            print('| %s | %.2f (%.2f-%.2f) | %s |' % (via, statistics.median(t), min(t), max(t),
                                                  '%.2f' % (statistics.median(t) / k) if k and via != 'kzram' else ''))

# Issue 17's goals for ublk, as ratios within this run.
goals = []
def ratio(a, b):
    return a[0] / b[0] if a and b else None
for j in ('randread-4k-qd16', 'randwrite-4k-qd16'):
    r = ratio(med('ublk', j, 0), med('kzram', j, 0))
    if r is not None:
        goals.append('%s IOPS: %.2fx the kernel zram\'s (goal >= 0.7): %s' % (j, r, 'met' if r >= 0.7 else 'NOT met'))
for j in ('randread-4k-qd1', 'randwrite-4k-qd1'):
    r = ratio(med('ublk', j, 2), med('kzram', j, 2))
    if r is not None:
        goals.append('%s latency: %.2fx the kernel zram\'s (goal <= 3): %s' % (j, r, 'met' if r <= 3 else 'NOT met'))
    r = ratio(med('disk', j, 2), med('ublk', j, 2))
    if r is not None:
        goals.append('%s latency: %.2fx better than disk\'s (goal >= 3): %s' % (j, r, 'met' if r >= 3 else 'NOT met'))
if swaps.get('ublk') and swaps.get('kzram'):
    r = statistics.median(swaps['ublk']) / statistics.median(swaps['kzram'])
    goals.append('swap workload: %.2fx the kernel zram\'s time (goal <= 1.5): %s' % (r, 'met' if r <= 1.5 else 'NOT met'))
elif 'ublk' in swaps:
    goals.append('swap workload: failed through ublk (bench-swap.sh\'s messages above)')
if goals:
    print()
    print('Issue 17, ublk:')
    for g in goals:
        print('- ' + g)
PYEOF
