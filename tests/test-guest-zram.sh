#!/bin/bash
# The guest kernel's zram (Debian's 6.12, in a guest: guest-lib.sh) as the
# reference for what this host's zram lacks, side by side with uzram's
# control files: the attribute files each has and their modes, the
# comp_algorithm listing, algorithm_params's answers, and the files uzram
# does not have yet (writeback, idle by age, block_state in debugfs),
# whose presence and format in zram are checked for the work to come.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/guest-lib.sh"
source "$top_srcdir/tests/control-lib.sh"
in_guest --mem 512M --timeout 600

modprobe zram || fail "modprobe zram failed in the guest"
z=/sys/block/zram0
[ -d $z ] || fail "no $z after modprobe zram"
cleanup_fn "echo 1 > $z/reset"
start_ctl                      # uninitialised, as a fresh zram0 is

# The attribute files: the same mode wherever both have one.
bad=
both= only_zram=
for f in $z/*; do
    [ -f "$f" ] || continue
    n=${f##*/}
    # Every block device's own files are not zram's.
    case $n in dev|uevent|range|ext_range|removable|ro|size|alignment_offset|capability|discard_alignment|diskseq|events*|hidden|inflight|partscan) continue ;;
    esac
    [ -e "$ctl/$n" ] || { only_zram="$only_zram $n"; continue; }
    both="$both $n"
    zm=$(stat -c %a "$f") um=$(stat -c %a "$ctl/$n")
    [ "$zm" = "$um" ] || bad="$bad $n(zram $zm, uzram $um)"
done
echo "files both have:$both"
echo "files only the guest kernel's zram has:$only_zram"
[ -z "$bad" ] || fail "modes differ from zram's:$bad"
for n in disksize initstate comp_algorithm algorithm_params mm_stat io_stat stat mem_limit mem_used_max compact reset idle; do
    case " $both " in *" $n "*) ;; *) fail "$n is not in both (zram: $(ls $z | tr '\n' ' '))" ;; esac
done
# What the work to come has to match: writeback to a backing device, its
# limits and statistics.
for n in backing_dev writeback writeback_limit writeback_limit_enable bd_stat recomp_algorithm; do
    [ -e "$z/$n" ] && echo "zram has $n" || echo "zram has no $n"
done
for n in backing_dev writeback writeback_limit writeback_limit_enable bd_stat; do
    [ -e "$z/$n" ] || fail "the guest kernel's zram lacks $n (CONFIG_ZRAM_WRITEBACK)"
done

# comp_algorithm: the same shape, words with the current one in brackets.
zl=$(sed "s/ *$//" $z/comp_algorithm) ul=$(sed "s/ *$//" "$ctl/comp_algorithm")
echo "comp_algorithm: zram '$zl', uzram '$ul'"
shape='^(\[?[a-z0-9-]+\]? )+$'
[[ "$zl " =~ $shape ]] && [ "$(grep -o '\[' <<< "$zl" | wc -l)" = 1 ] ||
    fail "zram's comp_algorithm is not in the expected shape: '$zl'"
[[ "$ul " =~ $shape ]] && [ "$(grep -o '\[' <<< "$ul" | wc -l)" = 1 ] ||
    fail "uzram's comp_algorithm is not in zram's shape: '$ul'"
for a in lz4 zstd; do
    grep -qw "$a" <<< "$zl" || fail "zram lists no $a"
    grep -qw "$a" <<< "$ul" || fail "uzram lists no $a"
done

# One write(2) of exactly these bytes, from the shell: the errno's text or
# OK.  (control-lib.sh's attr_write starts python3, which in a guest under
# TCG on a busy host can take longer than its bound.)
aw () { local e; e=$( { printf '%s' "$2" > "$1"; } 2>&1 ) && echo OK || echo "${e##*: }"; }

# algorithm_params: the writes uzram takes, zram takes too.
echo zstd > $z/comp_algorithm
echo zstd > "$ctl/comp_algorithm"
for w in "level=3" "priority=0 level=5" "algo=zstd level=7"; do
    zr=$(aw $z/algorithm_params "$w") ur=$(aw "$ctl/algorithm_params" "$w")
    echo "algorithm_params '$w': zram $zr, uzram $ur"
    [ "$zr" = OK ] && [ "$ur" = OK ] || fail "algorithm_params '$w': zram $zr, uzram $ur"
done
for w in "level=" "algo=lz4 level=1"; do
    zr=$(aw $z/algorithm_params "$w") ur=$(aw "$ctl/algorithm_params" "$w")
    echo "algorithm_params '$w': zram $zr, uzram $ur"
done

# Idle by age (CONFIG_ZRAM_TRACK_ENTRY_ACTIME) and block_state, on a
# device with data in it.
echo 64M > $z/disksize
dd if=/usr/bin/bash of=/dev/zram0 bs=4k count=64 oflag=direct status=none || fail "writing zram0"
bs=/sys/kernel/debug/zram/zram0/block_state
[ -r $bs ] || fail "no $bs (CONFIG_ZRAM_MEMORY_TRACKING)"
head -n 3 $bs | sed 's/^/block_state: /'
# "index  seconds.micros  flags": same, written back, huge, idle.
[ "$(grep -cE '^ *[0-9]+ +[0-9]+\.[0-9]+ [.s][.w][.h][.i]' $bs)" -ge 64 ] ||
    fail "block_state does not list the 64 written blocks in the documented format"
echo 0 > $z/idle 2>/dev/null && echo "zram takes idle=SECONDS (idle by age)" ||
    fail "zram refused idle=0 (idle by age)"
echo all > $z/idle || fail "zram refused idle=all"
[ "$(grep -cE ' [.s][.w][.h]i' $bs)" -ge 64 ] || fail "idle=all did not mark the blocks idle in block_state"
r=$(aw "$ctl/idle" all)
echo "uzram idle=all: $r"
echo "PASS: $0"
