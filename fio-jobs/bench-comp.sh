#!/bin/bash
# Every compressor on the page corpus, uzram beside the kernel's zram, as a
# markdown table on stdout (progress on stderr).  Root, for /dev/zram0.
#
#   fio-jobs/bench-comp.sh [--image FILE] [--reps N] [--algs 'A B'] [--no-kernel] [--no-dict]
#
# For each algorithm uzram has built in (or each of --algs, for uzram and
# the kernel alike): a fresh device of the image's size
# (comp_algorithm written before disksize, through the control files), the
# image copied in with `nbdcopy -S 0` (every page written, zero pages too,
# as dd writes them into the kernel's zram), mm_stat's compr_data_size and
# mem_used_total, the device read back with `nbdcopy URI null:`, then
# compared with the image byte for byte (untimed).  The kernel's zram0
# gets the same image with dd bs=1M oflag=direct and is read back with
# dd iflag=direct, for every algorithm it lists, then reset (held under
# /tmp/uzram-test.lock, which the test suite shares).  Times are medians
# of N repetitions (default 3), the algorithms taking turns within each
# repetition, in reverse order every other one, so that a shared machine's
# load and the position in the turn fall on all alike; copy-in
# and read-back compare within one column only where the path is the same
# (uzram against uzram).
#
# Dictionaries (--no-dict skips): zstd --train on the 4 KiB pages of the
# image's second half, then zstd, lz4 and lz4hc with and without dict= on
# the first half only, so that no page trained on is measured.
#
# Expect (see fio-jobs/README.md): lzo-rle within a fraction of a percent
# of the kernel's lzo-rle in compr_data_size, and its copy-in no slower
# than uzram's lzo.
here=$(cd "$(dirname "$0")" && pwd)
prog=bench-comp
source "$here/bench-lib.sh"

image= reps=3 kernel=yes dict=yes only=
while [ $# -gt 0 ]; do
    case $1 in
    --image) image=$2; shift ;;
    --reps) reps=$2; shift ;;
    --algs) only=$2; shift ;;
    --no-kernel) kernel=no ;;
    --no-dict) dict=no ;;
    *) die "unknown option $1" ;;
    esac
    shift
done
for t in nbdkit nbdcopy cmp bc; do
    command -v $t >/dev/null || die "needs $t"
done
[ -f "$PLUGIN" ] || die "no plugin at $PLUGIN: build first (scripts/build.sh)"

tmp=$(mktemp -d /tmp/uzram-bench-comp.XXXXXX)
nbdkit_pid=
kz_used=
cleanup ()
{
    [ -n "$nbdkit_pid" ] && stop_pid "$nbdkit_pid"
    [ -n "$kz_used" ] && echo 1 > /sys/block/zram0/reset
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "$image" ]; then
    image=$tmp/corpus.img
    log "building the image: scripts/make-corpus.sh $image 256"
    "$src/scripts/make-corpus.sh" "$image" 256 > "$tmp/corpus.txt" 2>&1 ||
        die "make-corpus failed: $(tail -3 "$tmp/corpus.txt")"
fi
bytes=$(stat -c %s "$image")

now () { date +%s.%N; }
median () { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field () { awk -v n="$2" '{ print $n }' "$1"; }

# uzram ALG IMAGE [PARAMS]: one run; prints "compr mem in out".
uzram ()
{
    local alg=$1 img=$2 params=${3:-} ctl=$tmp/ctl sock=$tmp/sock
    local n=$(stat -c %s "$2") compr mem t0 t1 tin tout
    mkdir -p "$ctl"
    {
        rm -f "$sock"
        nbdkit -f -U "$sock" --threads $((2 * $(nproc))) "$PLUGIN" control="$ctl" &
        nbdkit_pid=$!
        wait_for 20 test -e "$ctl/disksize" || die "nbdkit did not start"
        echo "$alg" > "$ctl/comp_algorithm"
        [ -n "$params" ] && echo "$params" > "$ctl/algorithm_params"
        echo "$n" > "$ctl/disksize"
        local uri="nbd+unix:///?socket=$sock"
        t0=$(now); timeout 900 nbdcopy -S 0 "$img" "$uri"; t1=$(now)
        tin=$(echo "$t1 - $t0" | bc)
        compr=$(field "$ctl/mm_stat" 2); mem=$(field "$ctl/mm_stat" 3)
        t0=$(now); timeout 900 nbdcopy "$uri" null:; t1=$(now)
        tout=$(echo "$t1 - $t0" | bc)
        timeout 900 nbdcopy "$uri" - | cmp -s - "$img" ||
            die "uzram $alg${params:+ $params}: read back differs from the image"
        stop_pid "$nbdkit_pid"; nbdkit_pid=
    }
    echo "$compr $mem $tin $tout"
}

# kzram ALG: the same on the kernel's zram0 (under the lock).
kzram ()
{
    local alg=$1 z=/sys/block/zram0 compr mem t0 t1 tin tout
    {
        echo 1 > $z/reset
        echo "$alg" > $z/comp_algorithm
        echo "$bytes" > $z/disksize
        t0=$(now); dd if="$image" of=/dev/zram0 bs=1M oflag=direct status=none; t1=$(now)
        tin=$(echo "$t1 - $t0" | bc)
        compr=$(field $z/mm_stat 2); mem=$(field $z/mm_stat 3)
        t0=$(now); dd if=/dev/zram0 of=/dev/null bs=1M iflag=direct status=none; t1=$(now)
        tout=$(echo "$t1 - $t0" | bc)
        cmp -s /dev/zram0 "$image" || { echo 1 > $z/reset; die "kernel zram $alg: read back differs"; }
    }
    echo 1 > $z/reset
    echo "$compr $mem $tin $tout"
}

# collect KEY "compr mem in out": keeps the sizes, appends the times.
declare -A size tins touts
collect ()
{
    local compr mem tin tout
    read -r compr mem tin tout <<<"$2"
    log "  $1: copy-in $tin s, read-back $tout s"
    size[$1]="$compr $mem"
    tins[$1]+="$tin "
    touts[$1]+="$tout "
}
med () { tr ' ' '\n' <<<"$1" | grep . | median; }

algs=$(nbdkit "$PLUGIN" --dump-plugin | sed -n 's/^zram_comp_algorithms=//p')
pick () { local a out=; for a in $1; do case " $only " in *" $a "*) out+="$a " ;; esac; done; echo $out; }
[ -n "$only" ] && algs=$(pick "$algs")
kalgs=
[ $kernel = yes ] && [ -w /sys/block/zram0/comp_algorithm ] &&
    kalgs=$(tr -d '[]' < /sys/block/zram0/comp_algorithm)
[ -n "$only" ] && [ -n "$kalgs" ] && kalgs=$(pick "$kalgs")
reverse () { local a out=; for a in $1; do out="$a $out"; done; echo $out; }
for (( rep = 1; rep <= reps; rep++ )); do
    order=$algs korder=$kalgs
    if (( rep % 2 == 0 )); then
        order=$(reverse "$algs") korder=$(reverse "$kalgs")
    fi
    for a in $order; do
        log "rep $rep/$reps: uzram $a"
        collect "uzram,$a" "$(uzram "$a" "$image")"
    done
    if [ -n "$kalgs" ]; then
        exec 9> /tmp/uzram-test.lock
        flock 9
        [ "$(cat /sys/block/zram0/initstate)" = 0 ] || die "zram0 is in use"
        kz_used=yes
        for a in $korder; do
            log "rep $rep/$reps: kernel zram $a"
            collect "kernel,$a" "$(kzram "$a")"
        done
        kz_used=
        flock -u 9
    fi
done
declare -A res
for k in "${!size[@]}"; do
    res[$k]="${size[$k]} $(med "${tins[$k]}") $(med "${touts[$k]}")"
done

ref=${res[uzram,lzo]:-}
[ -n "$ref" ] || die "the ratios need uzram's lzo among the algorithms"
ref_in=$(awk '{ print $3 }' <<<"$ref")
echo "Image: $(basename "$image"), $bytes bytes; $reps repetitions, medians;" \
     "$(nproc) CPUs, Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')."
echo
echo "| contender | algorithm | compr_data_size | mem_used_total | copy-in s | read-back s | copy-in / uzram lzo |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
for a in $algs $kalgs; do
    for c in uzram kernel; do
        r=${res[$c,$a]:-}
        [ -n "$r" ] || continue
        read -r compr mem tin tout <<<"$r"
        printf '| %s | %s | %s | %s | %.2f | %.2f | %s |\n' \
            "$([ $c = kernel ] && echo 'kernel zram' || echo uzram)" "$a" \
            "$compr" "$mem" "$tin" "$tout" \
            "$([ $c = uzram ] && echo "scale=2; $tin / $ref_in" | bc | sed 's/^\./0./' || echo -)"
    done
done | awk '!seen[$0]++'

if [ $dict = yes ] && command -v zstd >/dev/null; then
    half=$(( bytes / 2 / 4096 * 4096 ))
    head -c $half "$image" > "$tmp/first.img"
    tail -c +$(( half + 1 )) "$image" > "$tmp/second.img"
    log "training a dictionary on the second half"
    zstd -q --train -B4096 --maxdict=65536 "$tmp/second.img" -o "$tmp/dict" ||
        die "zstd --train failed"
    echo
    echo "Dictionary: \`zstd --train -B4096 --maxdict=65536\` on the image's" \
         "second half ($(stat -c %s "$tmp/dict") bytes); sizes on the first half" \
         "($half bytes), which it never saw."
    echo
    echo "| algorithm | compr_data_size | with dict= | saved | copy-in s | with dict= |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for a in zstd lz4 lz4hc; do
        case " $algs " in *" $a "*) ;; *) continue ;; esac
        log "dictionary: $a"
        read -r c0 m0 i0 o0 <<<"$(uzram $a "$tmp/first.img")"
        read -r c1 m1 i1 o1 <<<"$(uzram $a "$tmp/first.img" "dict=$tmp/dict")"
        # (one run each: the sizes are exact, the times only indicative)
        printf '| %s | %s | %s | %.1f %% | %.2f | %.2f |\n' "$a" "$c0" "$c1" \
            "$(echo "scale=4; 100 * ($c0 - $c1) / $c0" | bc)" "$i0" "$i1"
    done
fi
