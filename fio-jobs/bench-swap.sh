#!/bin/bash
# The swap benchmark (issue 8): the same swapping workload through uzram
# attached each local way (--via disk, --via nbdfuse) and through the
# kernel's zram with lzo, alternating, REPS times each.  Reports the
# median wall time and peak memory (the device's mem_used_max, and for
# uzram also nbdkit's peak RSS, VmHWM), with ratios to the kernel's zram.
#
#   fio-jobs/bench-swap.sh [SIZE_MIB [LIMIT_MIB [REPS]]]   (1024 256 3)
#
# PATHS (default "kzram disk nbdfuse") picks the paths: kzram and any
# `uzram up --via` (ublk, disk, nbd, nbdfuse); "zstd" adds the userspace
# peer issue 8 quotes: nbdkit memory allocator=zstd through nbdfuse and a
# loop device (its peak memory is nbdkit's VmHWM).  COMP names the
# compressor of both the kernel's zram and uzram (default: lzo for the
# kernel's, uzram's own default for uzram).  SWAP_TSV names a file to
# append each run's figures to ("path rep seconds mem_used_max hwm_kib";
# run-bench-local.sh reads it).
#
# The workload (tests/swap-workload) fills SIZE_MIB of memory inside a
# memory cgroup limited to LIMIT_MIB, touches it twice in scattered order
# and checks every byte.  Needs root.  The kernel's zram is reset after
# use, also when interrupted.
here=$(cd "$(dirname "$0")" && pwd)
prog=bench-swap
source "$here/bench-lib.sh"   # set -euo pipefail, $src, $PLUGIN, wait_for
export top_srcdir=$src top_builddir PLUGIN
size=${1:-1024} limit=${2:-256} reps=${3:-3} paths=${PATHS:-kzram disk nbdfuse}
comp=${COMP:-} swap_tsv=${SWAP_TSV:-}
case " $paths " in *" kzram "*) ;; *) echo "bench-swap: PATHS must include kzram, the reference" >&2; exit 2 ;; esac
workload=$top_builddir/tests/swap-workload
[ -x "$workload" ] || make -C "$top_builddir/tests" swap-workload >/dev/null
source "$src/tests/functions.sh"    # cleanup_fn, cg_create, cg_run, tmpdir
set +e
export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$src/scripts/uzram
kz=/sys/block/zram0
[ -e $kz ] || modprobe zram 2>/dev/null || :
cleanup_fn "swapoff /dev/zram0 2>/dev/null; [ -e $kz/reset ] && echo 1 > $kz/reset"
cg_create $((limit << 20))

# run_one VIA: prints "seconds mem_used_max_bytes nbdkit_hwm_kib".  Runs in
# this shell, not a $(...) subshell, so that the clean-ups it registers
# (cleanup_fn) run at exit if it fails half-way; each is guarded so that
# it does nothing once run_one has stopped what it started.
run_one ()
{
    local via=$1 dev name=bench-$1-$$ t0 t1 mm hwm=0 pid
    if [ "$via" = zstd ]; then
        local zd=$tmpdir/zstd-$$-$RANDOM npid fpid
        mkdir -p "$zd/fuse"
        nbdkit -f -U "$zd/sock" --threads $(( 2 * $(nproc) )) memory 2G allocator=zstd 2> "$zd/nbdkit.log" &
        npid=$!
        cleanup_fn "[ -d $zd ] && kill $npid 2>/dev/null"
        wait_for 20 test -S "$zd/sock" || return 1
        nbdfuse "$zd/fuse" --unix "$zd/sock" < /dev/null > "$zd/nbdfuse.log" 2>&1 &
        fpid=$!
        cleanup_fn "[ -d $zd ] && { timeout 20 fusermount3 -u $zd/fuse 2>/dev/null; kill $fpid 2>/dev/null; }"
        wait_for 20 test -e "$zd/fuse/nbd" || return 1
        dev=$(timeout 30 losetup --direct-io=on --find --show "$zd/fuse/nbd") || return 1
        cleanup_fn "[ -d $zd ] && { swapoff $dev 2>/dev/null; losetup -d $dev 2>/dev/null; }"
        mkswap "$dev" >/dev/null && timeout 60 swapon --discard "$dev" || return 1
        t0=$(date +%s.%N)
        cg_run timeout 900 "$workload" "$size" 2 > "$tmpdir/w.out" 2>&1 || { cat "$tmpdir/w.out" >&2; return 1; }
        t1=$(date +%s.%N)
        hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$npid/status")
        timeout 300 swapoff "$dev"; timeout 30 losetup -d "$dev"
        timeout 20 fusermount3 -u "$zd/fuse"; kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null
        kill "$npid"; wait "$npid" 2>/dev/null
        rm -rf "$zd"    # all stopped: the clean-ups above now do nothing
        echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $((hwm * 1024)) $hwm"
        return 0
    fi
    if [ "$via" = kzram ]; then
        [ "$(cat $kz/disksize)" = 0 ] || { echo "kernel zram0 is in use" >&2; return 1; }
        echo "${comp:-lzo}" > $kz/comp_algorithm
        echo 2G > $kz/disksize
        mkswap /dev/zram0 >/dev/null && timeout 60 swapon --discard /dev/zram0 || return 1
        dev=/dev/zram0
    else
        # Down at exit too, should the workload fail (up's own failures
        # tear down what they started; down removes the directory).
        cleanup_fn "[ -d $UZRAM_RUN/$name ] && timeout 300 $uzram down $name >/dev/null"
        dev=$(timeout 120 "$uzram" up --size 2G --swap --via "$via" --name "$name" ${comp:+--comp "$comp"}) || return 1
        pid=$(cat "$UZRAM_RUN/$name/nbdkit.pid")
    fi
    t0=$(date +%s.%N)
    cg_run timeout 900 "$workload" "$size" 2 > "$tmpdir/w.out" 2>&1 || { cat "$tmpdir/w.out" >&2; return 1; }
    t1=$(date +%s.%N)
    if [ "$via" = kzram ]; then
        mm=$(awk '{ print $5 }' $kz/mm_stat)
        timeout 300 swapoff /dev/zram0; echo 1 > $kz/reset
    else
        mm=$(awk '{ print $5 }' "$UZRAM_RUN/$name/control/mm_stat")
        hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
        timeout 300 "$uzram" down "$name" >/dev/null
    fi
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $mm $hwm"
}

declare -A res
failed=
for r in $(seq "$reps"); do
    for via in $paths; do
        if ! run_one $via > "$tmpdir/one.out"; then
            # The other paths still run: one that fails is reported so.
            echo "bench-swap: $via failed" >&2
            [ -z "$swap_tsv" ] || echo "$via $r - - - failed" >> "$swap_tsv"
            failed+=" $via"
            case $via in
            kzram) swapoff /dev/zram0 2>/dev/null; echo 1 > $kz/reset ;;
            zstd) ;;   # its clean-ups run at exit
            *) [ -d "$UZRAM_RUN/bench-$via-$$" ] && timeout 300 "$uzram" down "bench-$via-$$" >/dev/null ;;
            esac
            continue
        fi
        out=$(cat "$tmpdir/one.out")
        echo "rep $r $via: $out" >&2
        [ -z "$swap_tsv" ] || echo "$via $r $out" >> "$swap_tsv"
        res[$via]+="$out"$'\n'
    done
done

med () { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "Swap workload: ${size} MiB working set in a ${limit} MiB memory cgroup, 2 passes plus a full check; $reps reps, medians."
echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -r), $(nproc) CPUs."
echo
echo "| path | wall s | ratio | device mem_used_max MiB | ratio | nbdkit peak RSS MiB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
kt=$(echo -n "${res[kzram]}" | awk '{ print $1 }' | med)
km=$(echo -n "${res[kzram]}" | awk '{ print $2 }' | med)
for via in $paths; do
    [ -n "${res[$via]:-}" ] || { echo "| $via | failed | | | | |"; continue; }
    t=$(echo -n "${res[$via]}" | awk '{ print $1 }' | med)
    m=$(echo -n "${res[$via]}" | awk '{ print $2 }' | med)
    h=$(echo -n "${res[$via]}" | awk '{ print $3 }' | med)
    name="uzram --via $via"; [ $via = kzram ] && name="kernel zram (${comp:-lzo})"; [ $via = disk ] && name="uzram --via disk"; [ $via = nbdfuse ] && name="uzram --via nbdfuse"; [ $via = zstd ] && name="nbdkit memory zstd, nbdfuse"
    awk -v n="$name" -v t="$t" -v kt="$kt" -v m="$m" -v km="$km" -v h="$h" -v k="$via" 'BEGIN {
        printf "| %s | %.2f | %.2fx | %.1f | %.2fx | %s |\n", n, t, t / kt, m / 1048576, m / km, (k == "kzram" ? "-" : sprintf("%.1f", h / 1024)) }'
done
[ -z "$failed" ] || { echo; echo "Failed:$failed"; exit 1; }
