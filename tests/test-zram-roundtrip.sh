#!/usr/bin/env bash
# Round trips through a real nbdkit: random data written at unaligned
# offsets and lengths that cross block boundaries, mixed with trims and
# zeroes, checked byte for byte against a shadow copy, from the writing
# connection and from a second one (multi-conn), for every compressor.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdsh

algs=$(nbdkit "$PLUGIN" --dump-plugin | sed -n 's/^zram_comp_algorithms=//p')
[ -n "$algs" ] || fail "--dump-plugin lists no zram_comp_algorithms"

for alg in $algs; do
    start_zram size=8M comp_algorithm=$alg
    export uri
    timeout 120 nbdsh -c '
import os, random
uri = os.environ["uri"]
h.connect_uri(uri)
size = h.get_size()
assert size == 8 << 20, size
assert h.can_multi_conn() and h.can_trim() and h.can_zero()
assert h.can_fast_zero() and h.can_fua() and h.can_flush()
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096

rnd = random.Random(42)
shadow = bytearray(size)
text = open("/usr/include/stdio.h", "rb").read()
for i in range(1500):
    n = rnd.randint(1, 3 * 4096 + 100)
    off = rnd.randint(0, size - n)
    op = rnd.random()
    if op < 0.45:
        kind = rnd.randrange(3)
        if kind == 0:
            buf = os.urandom(n)
        elif kind == 1:
            start = rnd.randrange(len(text))
            buf = (text[start:] + text)[:n]
            buf = (buf * (n // len(buf) + 1))[:n]
        else:
            buf = bytes([rnd.randrange(256)]) * n
        flags = nbd.CMD_FLAG_FUA if rnd.random() < 0.2 else 0
        h.pwrite(buf, off, flags)
        shadow[off:off + n] = buf
    elif op < 0.85:
        got = h.pread(n, off)
        assert got == shadow[off:off + n], "read %d at %d differs" % (n, off)
    elif op < 0.93:
        h.trim(n, off)
        a = (off + 4095) // 4096 * 4096
        b = (off + n) // 4096 * 4096
        if b > a:
            shadow[a:b] = bytes(b - a)
    else:
        flags = nbd.CMD_FLAG_FAST_ZERO if rnd.random() < 0.5 else 0
        h.zero(n, off, flags)
        shadow[off:off + n] = bytes(n)
h.flush()

# The whole disk, from this connection and from a second one.
for off in range(0, size, 1 << 20):
    assert h.pread(1 << 20, off) == shadow[off:off + (1 << 20)], off
h2 = nbd.NBD()
h2.connect_uri(uri)
for off in range(0, size, 1 << 20):
    assert h2.pread(1 << 20, off) == shadow[off:off + (1 << 20)], off
h2.shutdown()
h.shutdown()
' || fail "round trip with comp_algorithm=$alg"
    stop_nbdkit "$nbdkit_pid"
    echo "comp_algorithm=$alg: round trips ok"
done
