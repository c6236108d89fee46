#!/usr/bin/env bash
# Recompression over the real parts: nbdkit serving the plugin, nbdcopy,
# the FUSE control files.  A page corpus (scripts/make-corpus.sh, 32 MiB,
# RECOMP_CORPUS_MIB for another size) is copied in with comp_algorithm=lzo
# and recomp_algorithm algo=zstd; after `idle all` and
# `recompress type=idle`, compr_data_size and (after compact)
# mem_used_total must be smaller, huge pages fewer, and the device must
# read back byte for byte.  Also the listing and errors as write(2)
# returns them through FUSE.  Prints the bytes saved and the time taken.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdcopy cmp python3

mib=${RECOMP_CORPUS_MIB:-32}
img=$tmpdir/image
timeout 600 "$top_srcdir/scripts/make-corpus.sh" "$img" "$mib" > "$tmpdir/corpus.txt" 2>&1 ||
    fail "make-corpus: $(tail -3 "$tmpdir/corpus.txt")"
bytes=$(stat -c %s "$img")
algs=$(nbdkit "$PLUGIN" --dump-plugin | sed -n 's/^zram_comp_algorithms=//p')
case " $algs " in *" zstd "*) ;; *) echo "SKIP: zstd not built"; exit 77 ;; esac

ctl=$tmpdir/ctl
mkdir -p "$ctl"
start_zram control="$ctl"
for (( i = 0; i < 100; i++ )); do [ -e "$ctl/disksize" ] && break; sleep 0.1; done

# write_err FILE VALUE: the errno name a write gives ("ok" if none).
write_err ()
{
    python3 - "$1" "$2" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, sys.argv[2].encode())
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}
expect_err ()   # expect_err FILE VALUE ERRNO
{
    local got
    got=$(write_err "$ctl/$1" "$2")
    [ "$got" = "$3" ] || fail "write '$2' to $1: $got, expected $3"
}

[ "$(stat -c %a "$ctl/recomp_algorithm")" = 644 ] || fail "recomp_algorithm mode"
[ "$(stat -c %a "$ctl/recompress")" = 200 ] || fail "recompress mode"
[ -z "$(cat "$ctl/recomp_algorithm")" ] || fail "recomp_algorithm not empty at start"
expect_err recompress "type=idle" EINVAL              # uninitialised
expect_err recomp_algorithm "algo=nosuch" EINVAL
expect_err recomp_algorithm "algo=zstd priority=4" EINVAL
expect_err recomp_algorithm "priority=1" EINVAL
echo lzo > "$ctl/comp_algorithm"
echo "algo=zstd" > "$ctl/recomp_algorithm" || fail "recomp_algorithm algo=zstd"
want="#1: $(echo " $algs " | sed 's/ zstd / [zstd] /; s/^ //')"
[ "$(cat "$ctl/recomp_algorithm")" = "$want" ] ||
    fail "recomp_algorithm: '$(cat "$ctl/recomp_algorithm")', expected '$want'"
echo "$bytes" > "$ctl/disksize" || fail disksize
expect_err recomp_algorithm "algo=lz4 priority=2" EBUSY
expect_err recompress "type=cold" EINVAL
expect_err recompress "threshold=4096" EINVAL
expect_err recompress "algo=lz4" EINVAL
expect_err recompress "priority=2" EINVAL
expect_err recompress "max_pages=99999999999999999999999" ERANGE

timeout 300 nbdcopy -S 0 "$img" "$uri" || fail "nbdcopy in"
before=($(cat "$ctl/mm_stat"))
echo all > "$ctl/idle" || fail "idle all"
t0=$(date +%s.%N)
echo "type=idle" > "$ctl/recompress" || fail "recompress type=idle"
t1=$(date +%s.%N)
after=($(cat "$ctl/mm_stat"))
echo 1 > "$ctl/compact"
compacted=($(cat "$ctl/mm_stat"))
echo "before:    ${before[*]}"
echo "after:     ${after[*]}"
echo "compacted: ${compacted[*]}"
secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
echo "lzo -> zstd on ${mib} MiB: compr_data_size ${before[1]} -> ${after[1]}" \
     "(saved $(( before[1] - after[1] ))), mem_used_total ${before[2]} ->" \
     "${compacted[2]} after compact (saved $(( before[2] - compacted[2] ))), in ${secs} s"
[ "${after[0]}" = "${before[0]}" ] || fail "orig_data_size changed"
[ "${after[5]}" = "${before[5]}" ] || fail "same_pages changed"
[ "${after[1]}" -lt $(( before[1] * 95 / 100 )) ] ||
    fail "compr_data_size ${before[1]} -> ${after[1]}: less than 5 % saved"
[ "${compacted[2]}" -lt "${before[2]}" ] ||
    fail "mem_used_total ${before[2]} -> ${compacted[2]}"
[ "${after[7]}" -lt "${before[7]}" ] || fail "huge_pages ${before[7]} -> ${after[7]}"

timeout 300 nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy out"
cmp "$img" "$tmpdir/back" || fail "the copy differs after recompression"

# Nothing idle any more: a second run finds nothing to do.
echo "type=idle" > "$ctl/recompress" || fail "second recompress"
again=($(cat "$ctl/mm_stat"))
[ "${again[1]}" = "${compacted[1]}" ] || fail "second run changed compr_data_size"
# reset clears recomp_algorithm.
stop_nbdkit "$nbdkit_pid"
