#!/bin/bash
# The side-by-side benchmark (issue 5): every fio job in fio-jobs/ and a
# copy-in of a realistic page image, against uzram and what a user would
# weigh it against, as medians over repetitions with ratios to uzram.
#
#   fio-jobs/run-bench.sh [--quick | --full] [options]
#
#   --quick          CI smoke: 16 MiB regions on 64 MiB disks, 1 s per job,
#                    no warm-up, 1 repetition, a 16 MiB image, no scaling
#   --full           (default) 256 MiB regions on 1 GiB disks, 10 s per job
#                    after 1 s of warm-up, 3 repetitions, the 256 MiB image,
#                    and the scaling part: disks of 64 MiB, 1 GiB and 64 GiB,
#                    data from 64 MiB to 4 GiB, and an empty 1 TiB disk
#   --contenders L   comma-separated, from: uzram null sparse zstd kzram
#                    (default all).  uzram: this plugin, $PLUGIN (default
#                    $top_builddir/plugin/.libs/nbdkit-zram-plugin.so),
#                    skipped with a message when it is not built.  null:
#                    nbdkit null, the protocol's floor cost.  sparse, zstd:
#                    nbdkit memory allocator=sparse / allocator=zstd.
#                    kzram: the kernel's zram with lzo, through libaio with
#                    direct I/O (a device of our own from zram-control's
#                    hot_add, reset and removed afterwards; /dev/zram0 only
#                    when there is no hot_add and it is uninitialised)
#   --jobs L         comma-separated job names (fio-jobs/NAME.fio), or "none"
#   --reps N --runtime S --ramp S --size SIZE --disk SIZE
#   --image FILE     the copy-in image (default: scripts/make-corpus.sh
#                    builds one, 256 MiB, 16 in quick mode); --no-copy
#   --scaling / --no-scaling
#   --scale-points "DISK:DATA ..."  (default "64M:64M 1G:64M 64G:64M
#                    64G:256M 64G:1G 64G:4G")
#   --threads N      nbdkit's --threads, the same for every nbdkit contender
#                    (default auto: twice the CPU count; "default": nbdkit's
#                    own, 16).  Fewer threads per connection mean fewer
#                    futex wake-ups in nbdkit's request loop (README.md)
#   --out DIR        where the results go (default fio-jobs/results)
#
# Writes DIR/bench-MODE-DATE-HOST.{md,png,tsv} (report, chart, raw
# figures) and copies them to DIR/latest-MODE.{md,png,tsv}; prints the
# report.  Needs root for the kernel's zram (skipped otherwise).  Full mode
# takes about 35 minutes on 2 cores and up to ~5 GiB of RAM at a time (4 GiB
# in nbdkit memory sparse; the kernel's table for an empty 1 TiB zram).
# Every nbdkit it starts is stopped by pid, and the kernel's zram is reset,
# also when interrupted.
here=$(cd "$(dirname "$0")" && pwd)
prog=run-bench
source "$here/bench-lib.sh"   # set -euo pipefail, $src, $PLUGIN, die, log, stop_pid
report_py=$here/bench-report.py

cmdline="fio-jobs/run-bench.sh${*:+ $*}"
mode=full contenders=uzram,null,sparse,zstd,kzram jobs=all out=$here/results
reps= runtime= ramp= size= disk= image= copy=yes scaling= threads=auto
scale_points="64M:64M 1G:64M 64G:64M 64G:256M 64G:1G 64G:4G"
while [ $# -gt 0 ]; do
    case $1 in
        --quick) mode=quick ;;
        --full) mode=full ;;
        --contenders) contenders=$2; shift ;;
        --jobs) jobs=$2; shift ;;
        --reps) reps=$2; shift ;;
        --runtime) runtime=$2; shift ;;
        --ramp) ramp=$2; shift ;;
        --size) size=$2; shift ;;
        --disk) disk=$2; shift ;;
        --image) image=$2; shift ;;
        --no-copy) copy=no ;;
        --scaling) scaling=yes ;;
        --no-scaling) scaling=no ;;
        --scale-points) scale_points=$2; shift ;;
        --out) out=$2; shift ;;
        --threads) threads=$2; shift ;;
        -h|--help) sed -n '2,/^here=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
if [ $mode = quick ]; then
    : "${reps:=1}" "${runtime:=1}" "${ramp:=0}" "${size:=16M}" "${disk:=64M}" "${scaling:=no}"
    image_mib=16
else
    : "${reps:=3}" "${runtime:=10}" "${ramp:=1}" "${size:=256M}" "${disk:=1G}" "${scaling:=yes}"
    image_mib=256
fi
case $reps in ''|*[!0-9]*|0) die "--reps must be a positive number";; esac
[ "$threads" = auto ] && threads=$(( 2 * $(nproc) ))
[ "$threads" = default ] && threads=
case $threads in ''|[1-9]|[1-9][0-9]|[1-9][0-9][0-9]) ;; *) die "--threads must be a number from 1 to 999, auto or default";; esac

for t in nbdkit fio nbdcopy nbdinfo gnuplot; do
    command -v $t >/dev/null || die "needs $t: run scripts/install-deps.sh"
done

tmp=$(mktemp -d /tmp/uzram-bench.XXXXXX)
mkdir -p "$tmp/fio" "$tmp/kjobs" "$tmp/log"
raw=$tmp/raw.tsv
printf 'kind\tcontender\tjob\trep\tdisk\tdata_bytes\tmbps\tiops\tp99_us\tsecs\trss_kib\tanon_kib\tmem_used\tfixed_kib\tstatus\n' > "$raw"

# --- clean-up: every nbdkit by its pid, the kernel's zram reset -----------
nbdkit_pids=()
zdev= zdev_added=no kz_table_kib=-
zram_reset ()
{
    [ -n "$zdev" ] || return 0
    echo 1 > /sys/block/$zdev/reset 2>/dev/null ||
        echo "run-bench: could not reset /dev/$zdev" >&2
}
cleanup ()
{
    local rc=$? p
    set +e
    for p in "${nbdkit_pids[@]}"; do stop_pid "$p"; done
    if [ -n "$zdev" ]; then
        zram_reset
        [ $zdev_added = yes ] && echo "${zdev#zram}" > /sys/class/zram-control/hot_remove
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'echo "run-bench: interrupted" >&2; exit 130' INT TERM HUP

bytes () { numfmt --from=iec "$1"; }

# --- contenders -----------------------------------------------------------
want () { case ",$contenders," in *",$1,"*) return 0;; esac; return 1; }
for c in ${contenders//,/ }; do
    case $c in uzram|null|sparse|zstd|kzram) ;; *) die "unknown contender '$c'";; esac
done

if want uzram && [ ! -f "$PLUGIN" ]; then
    log "uzram skipped: $PLUGIN is not built (make, or set PLUGIN=)"
    contenders=$(echo ",$contenders," | sed 's/,uzram,/,/; s/^,//; s/,$//')
fi
# uzram's own mm_stat comes from its control filesystem, when this build
# has one and FUSE works here; otherwise from its -D zram.stats=1 debug
# output at unload, in an extra untimed copy-in.
uzram_control=no
if want uzram && [ -c /dev/fuse ]; then
    mkdir -p "$tmp/probe"
    if timeout 20 nbdkit -U - "$PLUGIN" 1M control="$tmp/probe" \
        --run "cat '$tmp/probe/mm_stat'" >/dev/null 2>&1; then
        uzram_control=yes
    fi
fi

if want kzram; then
    if [ "$(id -u)" != 0 ] || ! [ -d /sys/class/zram-control ] && ! [ -d /sys/block/zram0 ]; then
        log "kzram skipped: needs root and zram (built in or the module loaded)"
        contenders=$(echo ",$contenders," | sed 's/,kzram,/,/; s/^,//; s/,$//')
    elif [ -w /sys/class/zram-control/hot_add ]; then
        zdev=zram$(cat /sys/class/zram-control/hot_add)
        zdev_added=yes
    elif [ "$(cat /sys/block/zram0/disksize 2>/dev/null)" = 0 ]; then
        zdev=zram0
    else
        log "kzram skipped: /dev/zram0 is in use and there is no hot_add"
        contenders=$(echo ",$contenders," | sed 's/,kzram,/,/; s/^,//; s/,$//')
    fi
    if [ -n "$zdev" ]; then
        grep -qw lzo /sys/block/$zdev/comp_algorithm ||
            { log "kzram: no lzo in $(cat /sys/block/$zdev/comp_algorithm)"; }
        for i in $(seq 50); do [ -b /dev/$zdev ] && break; sleep 0.1; done
    fi
fi
[ -n "$contenders" ] || die "no contender left to run"
log "contenders: $contenders"

# start_server CONTENDER DISK: starts it and sets $srv_pid, $uri (NBD) or
# $dev (kernel).  Returns 1 when it does not come up within 20 s.
nstart=0
start_server ()
{
    local c=$1 size=$2 args
    srv_pid= uri= dev=
    if [ $c = kzram ]; then
        zram_reset
        echo lzo > /sys/block/$zdev/comp_algorithm
        local v0 v1
        v0=$(awk '/^VmallocUsed:/ {print $2}' /proc/meminfo)
        echo "$size" > /sys/block/$zdev/disksize
        v1=$(awk '/^VmallocUsed:/ {print $2}' /proc/meminfo)
        # Its slot table: not in mm_stat, and global, so the measure is
        # only as good as the machine is quiet.
        kz_table_kib=$(( v1 - v0 ))
        dev=/dev/$zdev
        return 0
    fi
    case $c in
        uzram) args=("$PLUGIN" size="$size")
               [ $uzram_control = yes ] && { mkdir -p "$tmp/ctl"; args+=(control="$tmp/ctl"); } ;;
        null) args=(null size="$size") ;;
        sparse) args=(memory size="$size" allocator=sparse) ;;
        zstd) args=(memory size="$size" allocator=zstd) ;;
    esac
    nstart=$((nstart+1))
    local sock=$tmp/s$nstart.sock pidf=$tmp/s$nstart.pid
    nbdkit -f --exit-with-parent -U "$sock" -P "$pidf" ${threads:+--threads "$threads"} \
        "${extra_nbdkit_args[@]}" "${args[@]}" \
        2>"$tmp/log/nbdkit-$c-$nstart.log" &
    srv_pid=$!
    nbdkit_pids+=("$srv_pid")
    local i
    for (( i=0; i<200; i++ )); do
        [ -s "$pidf" ] && [ -S "$sock" ] && break
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! [ -S "$sock" ]; then
        log "$c did not start: $(tail -3 "$tmp/log/nbdkit-$c-$nstart.log")"
        stop_server
        return 1
    fi
    uri="nbd+unix:///?socket=$sock"
}
extra_nbdkit_args=()
stop_server ()
{
    if [ -n "$srv_pid" ]; then
        stop_pid "$srv_pid"
        local p keep=()
        for p in "${nbdkit_pids[@]}"; do [ "$p" != "$srv_pid" ] && keep+=("$p"); done
        nbdkit_pids=("${keep[@]}")
        srv_pid=
    fi
    [ -n "$dev" ] && zram_reset
    dev=
}
# mem_now: "VmRSS_KiB RssAnon_KiB mem_used_total_bytes" of the running
# contender, "-" where it has none.
mem_now ()
{
    local rss=- anon=- used=-
    if [ -n "$srv_pid" ]; then
        rss=$(awk '/^VmRSS:/ {print $2}' /proc/$srv_pid/status)
        anon=$(awk '/^RssAnon:/ {print $2}' /proc/$srv_pid/status)
        [ -f "$tmp/ctl/mm_stat" ] && [ $uzram_control = yes ] &&
            used=$(awk '{print $3}' "$tmp/ctl/mm_stat" 2>/dev/null || echo -)
    elif [ -n "$dev" ]; then
        used=$(awk '{print $3}' /sys/block/$zdev/mm_stat)
    fi
    echo "$rss $anon $used"
}
# mem_delta "BEFORE" "AFTER": the growth of VmRSS and RssAnon, the
# mem_used_total after, and the fixed cost: the server's VmRSS before any
# client, or the kernel zram's slot table.
mem_delta ()
{
    local b=($1) a=($2) r=- n=- fixed=-
    [ "${b[0]}" != - ] && r=$(( a[0] - b[0] )) && n=$(( a[1] - b[1] )) && fixed=${b[0]}
    [ -n "$dev" ] && fixed=$kz_table_kib
    echo "$r $n ${a[2]} $fixed"
}
row () { local IFS=$'\t'; echo "$*" >> "$raw"; }
now () { date +%s.%N; }
calc () { awk "BEGIN { printf \"%.3f\", $1 }"; }

# --- fio jobs ---------------------------------------------------------------
if [ "$jobs" = all ]; then
    jobs=$(cd "$here" && ls *.fio | sed 's/\.fio$//' | tr '\n' ,)
elif [ "$jobs" = none ]; then
    jobs=
fi
jobs=${jobs%,}
for j in ${jobs//,/ }; do [ -f "$here/$j.fio" ] || die "no job fio-jobs/$j.fio"; done
# The kernel's variant of each job: libaio with direct I/O on the device.
for f in "$here"/*.fio; do
    sed 's/^ioengine=nbd$/ioengine=libaio\ndirect=1/; s/^uri=\${uri}$/filename=${filename}/' \
        "$f" > "$tmp/kjobs/$(basename "$f")"
done
# The verify job needs 2 x size.
[ "$(bytes "$disk")" -ge $(( 2 * $(bytes "$size") )) ] || die "--disk must be at least 2 x --size"

run_fio ()   # run_fio CONTENDER JOB REP
{
    local c=$1 j=$2 rep=$3 jobfile=$here/$2.fio json=$tmp/fio/$1-$2-$3.json
    if [ $c = null ] && [ $j = verify ]; then   # null keeps nothing to verify
        row job $c $j $rep "$disk" - - - - - - - - - n/a
        return
    fi
    [ $c = kzram ] && jobfile=$tmp/kjobs/$j.fio
    start_server $c "$disk" || { row job $c $j $rep "$disk" - - - - - - - - - nostart; return; }
    local before after t0 t1 rc=0 figs
    before=$(mem_now)
    t0=$(now)
    ( cd "$tmp/fio" && uri=$uri filename=$dev size=$size runtime=$runtime ramp=$ramp \
        timeout $(( 600 + 2 * runtime )) fio --output-format=json --output="$json" "$jobfile" \
        >"$tmp/log/fio-$c-$j-$rep.out" 2>&1 ) || rc=$?
    t1=$(now)
    after=$(mem_now)
    mem=$(mem_delta "$before" "$after")
    stop_server
    figs=$("$report_py" fio "$json" "$j")
    [ $rc != 0 ] && figs="${figs% *} fio-exit$rc" &&
        log "fio $j against $c: exit $rc: $(tail -2 "$tmp/log/fio-$c-$j-$rep.out" | tr '\n' ' ')"
    set -- $figs
    row job $c $j $rep "$disk" - "$1" "$2" "$3" "$(calc "$t1 - $t0")" $mem "$4"
}

# --- copy-in of the image -----------------------------------------------------
# SOURCE: a file, copied as a user would (nbdcopy FILE URI, dd if=FILE), or
# a shell command whose output is copied (nbdcopy - URI, dd from a pipe).
copy_in ()   # copy_in CONTENDER REP SOURCE BYTES DISK KIND JOB [keep]
{            # keep: leave the server running (the caller stops it)
    local c=$1 rep=$2 srccmd=$3 nbytes=$4 dsize=$5 kind=$6 job=$7 keep=${8:-} mem
    start_server $c "$dsize" || { row $kind $c $job $rep "$dsize" $nbytes - - - - - - - - nostart; return 1; }
    local before after t0 t1 rc=0 secs
    before=$(mem_now)
    t0=$(now)
    if [ -f "$srccmd" ] && [ $c = kzram ]; then
        timeout 900 dd if="$srccmd" of="$dev" bs=1M oflag=direct status=none || rc=$?
    elif [ -f "$srccmd" ]; then
        timeout 900 nbdcopy "$srccmd" "$uri" || rc=$?
    elif [ $c = kzram ]; then
        bash -c "$srccmd" | timeout 900 dd of="$dev" bs=1M iflag=fullblock oflag=direct status=none || rc=$?
    else
        bash -c "$srccmd" | timeout 900 nbdcopy - "$uri" || rc=$?
    fi
    t1=$(now)
    after=$(mem_now)
    mem=$(mem_delta "$before" "$after")
    [ "$keep" = keep ] || stop_server
    secs=$(calc "$t1 - $t0")
    local status=ok
    [ $rc = 0 ] || { status=copy-exit$rc; log "copy-in into $c: exit $rc"; }
    row $kind $c $job $rep "$dsize" $nbytes "$(calc "$nbytes / $secs / 1000000")" - - \
        "$secs" $mem $status
    return 0
}

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
stamp=$(date -u +%Y%m%dT%H%MZ)
host=$(hostname -s 2>/dev/null || echo host)
mkdir -p "$out"
base=$out/bench-$mode-$stamp-$host

if [ $copy = yes ] || [ $scaling = yes ]; then
    if [ -z "$image" ]; then
        image=$tmp/corpus.img
        log "building the image: scripts/make-corpus.sh $image $image_mib"
        "$src/scripts/make-corpus.sh" "$image" $image_mib > "$tmp/corpus.txt" 2>&1 ||
            die "make-corpus failed: $(tail -3 "$tmp/corpus.txt")"
    fi
    image_bytes=$(stat -c %s "$image")
    cat "$image" > /dev/null     # in the page cache for every contender alike
fi

for (( rep=1; rep<=reps; rep++ )); do
    for j in ${jobs//,/ }; do
        for c in ${contenders//,/ }; do
            log "rep $rep/$reps: $j: $c"
            run_fio $c $j $rep
        done
    done
    if [ $copy = yes ]; then
        for c in ${contenders//,/ }; do
            log "rep $rep/$reps: copy-in: $c"
            copy_in $c $rep "$image" $image_bytes "$image_bytes" copy copy-in || true
        done
    fi
done

# uzram's and the kernel's mm_stat after one more, untimed copy of the
# image, side by side.  nbdcopy -S 0 writes every page, zero pages too, as
# dd does into the kernel's zram (by default nbdcopy turns zero blocks into
# write-zeroes, which zram counts as freed, not as same pages), so that
# orig_data_size and same_pages compare.  uzram's mm_stat comes from its
# control filesystem, or else from its statistics at unload.
uzram_mm_stat=
if [ $copy = yes ] && want uzram; then
    [ $uzram_control = no ] && extra_nbdkit_args=(-v -D zram.stats=1)
    if start_server uzram "$image_bytes"; then
        nbdcopy -S 0 "$image" "$uri" || true
        [ $uzram_control = yes ] && uzram_mm_stat=$(cat "$tmp/ctl/mm_stat" 2>/dev/null)
        stop_server
        [ $uzram_control = no ] &&
            uzram_mm_stat=$(grep -h 'unload: mm_stat:' "$tmp"/log/nbdkit-uzram-$nstart.log |
                            tail -1 | sed 's/.*mm_stat: *//')
        [ -n "$uzram_mm_stat" ] &&
            row mmstat uzram copy-in 1 "$image_bytes" $image_bytes - - - - - - \
                "$(echo $uzram_mm_stat | cut -d' ' -f3)" - ok
    fi
    extra_nbdkit_args=()
fi
kzram_mm_stat=
if [ $copy = yes ] && want kzram; then
    start_server kzram "$image_bytes"
    dd if="$image" of="$dev" bs=1M oflag=direct status=none
    kzram_mm_stat=$(cat /sys/block/$zdev/mm_stat)
    stop_server
fi

# --- scaling ---------------------------------------------------------------------
# DISK:DATA points: the image repeated (or its first DATA bytes) written into
# a disk of DISK bytes, then 4 KiB random reads at depth 16 over the data, on
# the same server.  One repetition each.  Sized for a 24 GiB machine: the
# largest point holds ~4 GiB (nbdkit memory sparse with 4 GiB of data).
scale_job=$tmp/scale-randread.fio
printf '%s\n' '[global]' 'ioengine=nbd' 'uri=${uri}' 'size=${size}' thread norandommap \
    randrepeat=1 '[randread]' rw=randread bs=4k iodepth=16 time_based \
    'runtime=${runtime}' 'ramp_time=${ramp}' > "$scale_job"
sed 's/^ioengine=nbd$/ioengine=libaio\ndirect=1/; s/^uri=\${uri}$/filename=${filename}/' \
    "$scale_job" > "$tmp/kjobs/scale-randread.fio"
if [ $scaling = yes ]; then
    for p in $scale_points; do
        d=${p%:*} n=$(bytes ${p#*:})
        for c in ${contenders//,/ }; do
            [ $c = null ] && continue      # holds nothing
            log "scaling: $c, disk $d, data ${p#*:}"
            copy_in $c 1 "while :; do cat '$image' || break; done | head -c $n" $n "$d" scale copy keep ||
                continue
            jf=$scale_job; [ $c = kzram ] && jf=$tmp/kjobs/scale-randread.fio
            json=$tmp/fio/scale-$c-$d-$n.json rc=0
            ( cd "$tmp/fio" && uri=$uri filename=$dev size=$n runtime=$runtime ramp=$ramp \
                timeout $(( 300 + 2 * runtime )) fio --output-format=json --output="$json" "$jf" \
                >"$tmp/log/fio-scale-$c-$d-$n.out" 2>&1 ) || rc=$?
            stop_server
            set -- $("$report_py" fio "$json" randread)
            [ $rc = 0 ] || set -- "$1" "$2" "$3" fio-exit$rc
            row scale $c randread 1 "$d" $n "$1" "$2" "$3" - - - - - "$4"
        done
    done

    # The memory cost of an empty 1 TiB disk, with a client connected.
    # The kernel's is its slot table, vmalloc'ed when disksize is set:
    # 4 GiB for 1 TiB, which this machine has room for.
    for c in ${contenders//,/ }; do
        [ $c = null ] && continue
        start_server $c 1T || continue
        if [ $c = kzram ]; then
            dd if=$dev of=/dev/null bs=4k count=1 iflag=direct status=none
            stop_server
            row empty $c - 1 1T 0 - - - - - - - "$kz_table_kib" ok
            continue
        fi
        st=$(timeout 60 nbdsh -u "$uri" -c "h.pread(4096, 0)" \
                -c "print(open('/proc/$srv_pid/status').read())" 2>/dev/null) || st=
        rss=$(echo "$st" | awk '/^VmRSS:/ {print $2}') anon=$(echo "$st" | awk '/^RssAnon:/ {print $2}')
        stop_server
        row empty $c - 1 1T 0 - - - - "${rss:--}" "${anon:--}" - - ok
    done
fi

# --- report ---------------------------------------------------------------------
{
    echo "# uzram side-by-side benchmark ($mode mode)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $host: Linux $(uname -r), $(nproc) CPUs ($cpu)," \
         "$(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM," \
         "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "uzram $(git -C "$src" describe --always --dirty 2>/dev/null || echo '?'), $(nbdkit --version | head -1)," \
         "$(fio --version), $(nbdcopy --version | head -1)."
    echo
    echo "Settings: $reps repetition(s); fio jobs on $(bytes $size | numfmt --to=iec-i --suffix=B)" \
         "regions of $(bytes $disk | numfmt --to=iec-i --suffix=B) disks," \
         "${runtime} s each after ${ramp} s of warm-up; NBD over a Unix socket" \
         "to nbdkit with ${threads:-its default} threads per connection" \
         "(fio's nbd engine, nbdcopy); the kernel's zram through libaio with O_DIRECT" \
         "(fio) and dd oflag=direct.  Command: \`$cmdline\`."
    if [ -n "${image:-}" ] && [ -f "$tmp/corpus.txt" ]; then
        echo
        echo "The image, from scripts/make-corpus.sh:"
        echo
        echo '```'
        grep -v '^heap dump' "$tmp/corpus.txt" | sed "s|$tmp/||"
        echo '```'
    fi
    if [ -n "$uzram_mm_stat$kzram_mm_stat" ]; then
        echo
        echo "mm_stat after the copy-in (orig_data_size compr_data_size mem_used_total" \
             "mem_limit mem_used_max same_pages pages_compacted huge_pages huge_pages_since):"
        echo
        echo '```'
        [ -n "$uzram_mm_stat" ] && echo "uzram  $uzram_mm_stat"
        [ -n "$kzram_mm_stat" ] && echo "kernel $kzram_mm_stat"
        echo '```'
    fi
} > "$tmp/header.md"

"$report_py" report "$raw" "$tmp/header.md" "$base.md" "$tmp/chart.dat"
cp "$raw" "$base.tsv"
ncols=$(head -1 "$tmp/chart.dat" | awk -F'\t' '{print NF}')
if [ "$ncols" -gt 1 ] && [ "$(wc -l < "$tmp/chart.dat")" -gt 1 ]; then
    gnuplot <<EOF 2>"$tmp/log/gnuplot.log" || log "gnuplot failed: $(head -3 "$tmp/log/gnuplot.log")"
set terminal pngcairo size 1400,700 noenhanced font ",10"
set output "$base.png"
set title "uzram side by side ($mode, $(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r)): MB/s, medians"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [10:*]
set ylabel "MB/s (log scale)"
set xtics rotate by -30 scale 0
set key outside right top
set grid ytics
plot for [i=2:$ncols] "$tmp/chart.dat" using i:xtic(1) title columnheader(i)
EOF
    echo "![MB/s per job and contender]($(basename "$base").png)" >> "$base.md"
fi
for ext in md png tsv; do
    [ -f "$base.$ext" ] && cp "$base.$ext" "$out/latest-$mode.$ext"
done
[ -f "$out/latest-$mode.md" ] && sed -i "s|($(basename "$base").png)|(latest-$mode.png)|" "$out/latest-$mode.md"
cat "$base.md"
log "results: $base.{md,png,tsv} and $out/latest-$mode.*"
