#!/bin/bash
# The local block-device benchmark (issue 7): the ways to get a block device
# or a fast NBD path from uzram on one machine, side by side with the
# kernel's zram, as medians over repetitions with ratios to nbdfuse and to
# the kernel.  Separate from run-bench.sh (issue 5's runner, which compares
# NBD servers) so that each can change without the other.
#
#   fio-jobs/run-bench-local.sh [options]
#
#   --contenders L   comma-separated, from (default all, in this order):
#                    disk     a loop device (--direct-io=on) over the
#                             plugin's DIR/disk, fio libaio on it
#                    nbdfuse  a loop device (--direct-io=on) over nbdfuse's
#                             DIR/nbd, nbdfuse talking NBD to the same plugin
#                    nbd      fio's nbd engine straight to the plugin
#                    kzram    the kernel's /dev/zram0 with lzo, fio libaio
#                             (reset afterwards, also when interrupted;
#                             skipped unless zram0 is free)
#                    classic  as disk, but with uring=off: the control
#                             filesystem on /dev/fuse even where the
#                             kernel offers FUSE over io_uring (disk
#                             uses it then: see enable_uring below)
#                    disk2    as disk, but with uring_threads=2: two
#                             threads (io_urings) per CPU instead of one
#                    base     as disk, but with the plugin given by --base
#                             (added to the default list when --base is
#                             given): before and after a change, in one run
#   --jobs L         job names in fio-jobs/ (default randread-4k-qd16,
#                    randwrite-4k-qd16,seqread-128k,seqwrite-128k)
#   --reps N         repetitions (3); each runs every job on every
#                    contender, the contenders' order rotating each time
#   --runtime S --ramp S   per job (10, 1)
#   --size SIZE      the region fio works on (256M); --disk SIZE the
#                    device (1G)
#   --base PLUGIN    another build of the plugin, for the base contender
#   --tsv FILE       also keep the raw figures
#
# disk uses FUSE over io_uring where /sys/module/fuse/parameters/
# enable_uring is Y (this script leaves it as it is, and says which);
# compare with classic in the same run.
#
# Needs root (loop devices, the kernel's zram), nbdkit, nbdfuse, losetup,
# fio.  PLUGIN defaults to $top_builddir/plugin/.libs/nbdkit-zram-plugin.so
# (top_builddir: build/ in the source tree).  Every server is fresh for
# each run, and torn down after it, also when interrupted: the loop
# device losetup gave us detached, nbdfuse's mount unmounted, nbdfuse and
# nbdkit stopped by pid (nbdkit unmounts its control filesystem), zram0
# reset.  About 13 minutes with the defaults and --base.
#
# Expect (issue 7's goals): disk at least 3x nbdfuse's IOPS and at least
# 0.5x the kernel zram's.  fio-jobs/README.md keeps what it measured.
here=$(cd "$(dirname "$0")" && pwd)
prog=run-bench-local
source "$here/bench-lib.sh"   # set -euo pipefail, $src, $PLUGIN, die, log, wait_for, stop_pid

contenders=disk,nbdfuse,nbd,kzram
jobs=randread-4k-qd16,randwrite-4k-qd16,seqread-128k,seqwrite-128k
reps=3 runtime=10 ramp=1 size=256M disk=1G tsv= base= contenders_given=no
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
        --tsv) tsv=$2; shift ;;
        -h|--help) sed -n '2,/^here=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
case $reps in ''|*[!0-9]*|0) die "--reps must be a positive number";; esac
[ -n "$base" ] && [ $contenders_given = no ] && contenders=disk,base,nbdfuse,nbd,kzram
for c in ${contenders//,/ }; do
    case $c in disk|disk2|classic|nbdfuse|nbd|kzram) ;;
        base) [ -f "$base" ] || die "the base contender needs --base PLUGIN" ;;
        *) die "unknown contender '$c'";; esac
done
for j in ${jobs//,/ }; do [ -f "$here/$j.fio" ] || die "no job fio-jobs/$j.fio"; done
[ "$(id -u)" = 0 ] || die "needs root (loop devices, zram)"
for t in nbdkit nbdfuse losetup fio fusermount3 python3; do
    command -v $t >/dev/null || die "needs $t: run scripts/install-deps.sh"
done
[ -f "$PLUGIN" ] || die "$PLUGIN is not built (scripts/build.sh, or set PLUGIN=)"

tmp=$(mktemp -d /tmp/uzram-bench-local.XXXXXX)
mkdir -p "$tmp/fio" "$tmp/kjobs" "$tmp/log"
raw=$tmp/raw.tsv

# --- clean-up: only what this script started --------------------------------
srv_pid= fuse_pid= loopdev= fusedir= zram_used=no
teardown ()
{
    set +e
    [ -n "$loopdev" ] && { losetup -d "$loopdev" || log "could not detach $loopdev"; }
    loopdev=
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

if [[ ,$contenders, == *,kzram,* ]] &&
   ! { [ -w /sys/block/zram0/reset ] && [ "$(cat /sys/block/zram0/disksize)" = 0 ]; }; then
    log "kzram skipped: /dev/zram0 missing or in use"
    contenders=$(echo ",$contenders," | sed 's/,kzram,/,/; s/^,//; s/,$//')
fi

# The block-device variant of each job, as run-bench.sh makes it.
for j in ${jobs//,/ }; do
    sed 's/^ioengine=nbd$/ioengine=libaio\ndirect=1/; s/^uri=\${uri}$/filename=${filename}/' \
        "$here/$j.fio" > "$tmp/kjobs/$j.fio"
done

# start CONTENDER N: brings it up and sets $uri or $dev.
start ()
{
    local c=$1 n=$2 sock=$tmp/s$2.sock
    uri= dev=
    if [ $c = kzram ]; then
        zram_used=yes
        echo lzo > /sys/block/zram0/comp_algorithm
        echo "$disk" > /sys/block/zram0/disksize
        dev=/dev/zram0
        return 0
    fi
    local plugin=$PLUGIN
    [ $c = base ] && plugin=$base
    local args=(-f -U "$sock" "$plugin" size="$disk")
    case $c in disk|disk2|base|classic) args+=(control="$tmp/ctl$n") ;; esac
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
                if ( cd "$tmp/fio" && uri=$uri filename=$dev size=$size runtime=$runtime ramp=$ramp \
                        timeout $(( 300 + 2 * runtime )) fio --output-format=json --output="$json" "$jf" \
                        >"$tmp/log/fio-$n.out" 2>&1 ); then
                    figs=$("$here/bench-report.py" fio "$json" "$j")
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
[ -n "$tsv" ] && cp "$raw" "$tsv"

echo "# uzram local block devices: $(date -u '+%Y-%m-%d %H:%M UTC'), Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# FUSE over io_uring (enable_uring): $(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo absent)"
echo "# $reps rep(s), ${runtime} s after ${ramp} s warm-up, $size regions of $disk devices; medians (min-max)"
python3 - "$raw" "$contenders" "$jobs" <<'EOF'
import statistics, sys
raw, contenders, jobs = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
figs = {}
for line in open(raw):
    c, j, rep, mbps, iops, p99, status = line.rstrip('\n').split('\t')
    if status == 'ok':
        figs.setdefault((c, j), []).append((float(iops), float(mbps)))
def med(c, j, i):
    v = [x[i] for x in figs.get((c, j), [])]
    return (statistics.median(v), min(v), max(v)) if v else None
print('| job | contender | IOPS | MB/s | x nbdfuse | x kzram |')
print('| --- | --- | ---: | ---: | ---: | ---: |')
for j in jobs:
    base = {b: med(b, j, 0) for b in ('nbdfuse', 'kzram')}
    for c in contenders:
        m, b = med(c, j, 0), med(c, j, 1)
        if m is None:
            print('| %s | %s | - | - | | |' % (j, c)); continue
        rn = '%.2f' % (m[0] / base['nbdfuse'][0]) if base['nbdfuse'] and c != 'nbdfuse' else ''
        rk = '%.2f' % (m[0] / base['kzram'][0]) if base['kzram'] and c != 'kzram' else ''
        print('| %s | %s | %.0f (%.0f-%.0f) | %.0f | %s | %s |' % (j, c, m[0], m[1], m[2], b[0], rn, rk))
EOF
