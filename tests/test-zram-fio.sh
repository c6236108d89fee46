#!/usr/bin/env bash
# fio's nbd engine: 4 KiB random reads and writes, 2 jobs (2 connections)
# at queue depth 16, every block written verified with crc32c.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit fio

start_zram_logged size=64M
timeout 300 fio --name=zram-verify --ioengine=nbd --uri="$uri" \
    --rw=randrw --rwmixread=50 --bs=4k --iodepth=16 --numjobs=2 \
    --size=32M --offset_increment=32M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
    --buffer_compress_percentage=60 --refill_buffers \
    --group_reporting --output="$tmpdir/fio.out" ||
    { cat "$tmpdir/fio.out"; fail "fio"; }
grep -E 'err=|IOPS|verify' "$tmpdir/fio.out" | head
grep -q 'err= 0' "$tmpdir/fio.out" || { cat "$tmpdir/fio.out"; fail "fio reported errors"; }
wait_close 2
expect_stat failed_writes 0
expect_stat failed_reads 0
[ "$(stat_of write_ios)" -gt 8000 ] || fail "write_ios $(stat_of write_ios)"
echo "mm_stat: $(last_mm_stat)"
