#!/bin/bash
# Builds a page image for bench-zsmalloc when scripts/make-corpus.sh is not
# there: real data cut into 4 KiB pages, in the mix DESIGN.md measured with.
#   tests/make-bench-image.sh OUT [MiB]     (default 256 MiB)
# About 40 % ELF binaries and libraries, 25 % text, 25 % a Python process's
# own heap, 10 % zero and same-filled pages.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
out=$1
mib=${2:-256}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# take BYTES FILE...: concatenates files, at most 2 MiB of each (so that
# no single big library dominates), until BYTES.
take ()
{
    local want=$1 have=0 f n; shift
    for f in "$@"; do
        [ "$have" -lt "$want" ] || break
        [ -f "$f" ] && [ -r "$f" ] || continue
        n=$(( want - have < 2097152 ? want - have : 2097152 ))
        head -c "$n" "$f" 2>/dev/null || continue
        have=$(( have + $(stat -c %s "$f") < have + n ? have + $(stat -c %s "$f") : have + n ))
    done
}

elf=$((mib * 1024 * 1024 * 40 / 100))
text=$((mib * 1024 * 1024 * 25 / 100))
heap=$((mib * 1024 * 1024 * 25 / 100))
same=$((mib * 1024 * 1024 - elf - text - heap))

find /usr/bin /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -size +8k \
    2>/dev/null | sort > "$tmp/elf.list"
# shellcheck disable=SC2046
take "$elf" $(cat "$tmp/elf.list") > "$tmp/elf"
find /usr/share/doc /usr/share/perl* /usr/include /usr/share/man \
    -type f \( -name '*.h' -o -name '*.pm' -o -name '*.txt' -o -name '*.html' \
    -o -name 'copyright' -o -name '*.pl' \) 2>/dev/null | sort > "$tmp/text.list"
# shellcheck disable=SC2046
take "$text" $(cat "$tmp/text.list") > "$tmp/text"

# A Python process with a realistic heap (dicts, strings, lists, floats)
# dumps its own writable anonymous mappings.
/usr/bin/python3 - "$heap" > "$tmp/heap" <<'EOF'
import random, sys
want = int(sys.argv[1])
random.seed(1)
data = []
objs = {}
for i in range(600000):
    k = 'key%d_%s' % (i, hex(random.getrandbits(40)))
    objs[k] = [i, i * 1.5, str(i) * (i % 7), (i, -i)]
    if i % 5 == 0:
        data.append(bytes(random.getrandbits(8) for _ in range(random.randint(16, 64))))
out = sys.stdout.buffer
done = 0
with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
    for line in maps:
        f = line.split()
        if len(f) > 5 and f[5] not in ('[heap]',):
            continue
        if 'rw' not in f[1]:
            continue
        lo, hi = (int(x, 16) for x in f[0].split('-'))
        while lo < hi and done < want:
            n = min(hi - lo, 1 << 20, want - done)
            try:
                mem.seek(lo)
                b = mem.read(n)
            except OSError:
                break
            out.write(b)
            done += len(b)
            lo += n
EOF

# Zero pages mostly, a few filled with one repeated word.
/usr/bin/python3 - "$same" > "$tmp/same" <<'EOF'
import sys, struct
n = int(sys.argv[1]) // 4096
out = sys.stdout.buffer
for i in range(n):
    out.write(bytes(4096) if i % 8 else struct.pack('<Q', 0x0101010101010101 * (i % 255 + 1)) * 512)
EOF

# Interleave the four in 1 MiB pieces, as a disk image would mix them.
/usr/bin/python3 - "$tmp" "$out" <<'EOF'
import sys, os
d, out = sys.argv[1], sys.argv[2]
src = [open(os.path.join(d, n), 'rb') for n in ('elf', 'text', 'heap', 'same')]
with open(out, 'wb') as o:
    live = list(src)
    while live:
        for f in list(live):
            b = f.read(1 << 20)
            if not b:
                live.remove(f)
                continue
            b += bytes(-len(b) % 4096)
            o.write(b)
EOF
echo "$out: $(( $(stat -c %s "$out") / 4096 )) pages"
