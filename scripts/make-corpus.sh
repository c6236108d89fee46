#!/bin/bash
# Builds a realistic memory image from real data on this machine, for the
# benchmarks (fio-jobs/run-bench.sh) and for comparing the plugin's mm_stat
# with the kernel zram's.
#
#   scripts/make-corpus.sh [OUT [SIZE_MIB]]     (default: corpus.img 256)
#
# Nothing in it is synthetic.  The pages come from:
#   heap   a Python process's own resident anonymous memory (its heap, its
#          arenas, its stacks): it imports stdlib modules, parses the stdlib
#          with ast, loads dpkg's package database into dicts and objects,
#          and so on, then dumps its resident pages via /proc/self/maps,
#          /proc/self/pagemap and /proc/self/mem
#   elf    ELF executables and shared libraries (/usr/bin,
#          /usr/lib/x86_64-linux-gnu), page by page as they map
#   text   docs, Perl modules, C headers, Python sources
#   comp   already-compressed files (the .gz under /usr/share/doc): the pages
#          zram stores raw as huge pages
#   zero   zero pages, in runs of 1 to 16 pages
#   same   pages filled with one repeated 8-byte word (0xff.., poison and
#          fill patterns), as freed and initialised memory has
# mixed in runs of up to 64 KiB so that it looks like a memory image.  The
# shares are picked so that, like the corpus in DESIGN.md, lzo compresses it
# about 2.85:1, ~7 % of its pages are same-filled (zeroes mostly) and ~2 % are
# huge (what the kernel's zram made of it: fio-jobs/README.md).
#
# The output is exactly SIZE_MIB MiB and, on a given machine, the same image
# on every run: fixed seeds, PYTHONHASHSEED=0, ASLR off and glibc's tcache off
# for the heap dump.  What still moves is a few dozen bytes in half a dozen
# heap pages (OpenSSL's and expat's random seeds, multiprocessing's authkey,
# a time stamp); the composition and the compressed sizes do not.  Another
# machine's files give another image.  About 3 s for 256 MiB.
# It prints its composition: pages per source, same-filled pages, and, when
# liblzo2 is installed, lzo1x_1's ratio and the pages it cannot shrink below
# 3/4 of a page (an estimate of zram's huge_pages).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

out=${1:-corpus.img}
size_mib=${2:-256}
case $size_mib in ''|*[!0-9]*|0) echo "make-corpus: SIZE_MIB must be a positive whole number of MiB" >&2; exit 1;; esac

tmp=$(mktemp -d /tmp/uzram-corpus.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The heap's share of the image, in MiB: the dumper grows its heap to a bit
# more than this so that the image needs no page twice.
heap_mib=$(( size_mib * 45 / 100 + 4 ))

# 1. The heap dump, in its own process so that the assembler's buffers are
# not in it.  setarch -R turns ASLR off so the pointers in it repeat.
noaslr=()
setarch "$(uname -m)" -R true 2>/dev/null && noaslr=(setarch "$(uname -m)" -R)
# A fixed environment, working directory and command line: they are on its
# stack, and the output goes to stdout so no temporary name is either.
# Not -I: it would ignore PYTHONHASHSEED, and string hashes fill the heap.
# No tcache: glibc marks each chunk freed into it with a per-process
# random key (tcache_key), which would differ in every dump.
(cd / && exec env -i PATH=/usr/bin:/bin LC_ALL=C PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
    GLIBC_TUNABLES=glibc.malloc.tcache_count=0 \
    timeout 600 "${noaslr[@]}" /usr/bin/python3 -S /dev/fd/3 "$heap_mib" \
    3<<'EOF' >"$tmp/heap.bin"
import sys
sys.path[:0] = [p for p in ('/usr/lib/python3.11', '/usr/lib/python3.11/lib-dynload')]
import os, gc, importlib

target_mib = int(sys.argv[1])
target = target_mib << 20

def anon_rss():
    # statm, not status: status also has context switch counts, which would
    # stay behind in the freed buffers and differ from run to run.
    with open('/proc/self/statm') as f:
        size, resident, shared = f.read().split()[:3]
    return (int(resident) - int(shared)) * 4096

# Modules a long-running Python service would have loaded.
mods = """abc argparse ast asyncio base64 binascii bisect bz2 calendar codecs
collections concurrent.futures configparser contextlib copy csv ctypes
dataclasses datetime decimal difflib dis email email.parser email.policy
enum fnmatch fractions functools gettext glob gzip hashlib heapq hmac html
html.parser http.client http.cookies http.server inspect io ipaddress
itertools json locale logging logging.handlers lzma mailbox mimetypes
multiprocessing numbers operator optparse os pathlib pickle pkgutil platform
plistlib pprint queue quopri random re selectors shlex shutil signal socket
sqlite3 ssl statistics string struct subprocess tarfile tempfile textwrap
threading time timeit tokenize tomllib traceback typing unicodedata
unittest urllib.parse urllib.request uuid warnings weakref xml.dom.minidom
xml.etree.ElementTree zipfile zoneinfo""".split()
loaded = {}
for m in mods:
    try:
        loaded[m] = importlib.import_module(m)
    except Exception:
        pass
import ast, json, re, sqlite3, collections, dataclasses, decimal, datetime, random
random.seed(0)     # its state was seeded from os.urandom at import

# dpkg's database as records: dicts, strings, lists, and objects.
@dataclasses.dataclass
class Package:
    name: str
    version: str
    fields: dict
    depends: list
    size_kib: int

packages = []
try:
    with open('/var/lib/dpkg/status', encoding='utf-8', errors='replace') as f:
        text = f.read()
    for para in text.split('\n\n'):
        fields, key = {}, None
        for line in para.splitlines():
            if line[:1] in (' ', '\t') and key:
                fields[key] += '\n' + line
            elif ':' in line:
                key, _, val = line.partition(':')
                fields[key] = val.strip()
        if 'Package' in fields:
            deps = [d.strip().split(' ')[0] for d in fields.get('Depends', '').split(',') if d.strip()]
            packages.append(Package(fields['Package'], fields.get('Version', ''), fields, deps,
                                    int(fields.get('Installed-Size', '0') or 0)))
except OSError:
    pass
by_name = {p.name: p for p in packages}
reverse_deps = collections.defaultdict(list)
for p in packages:
    for d in p.depends:
        reverse_deps[d].append(p.name)
as_json = json.dumps([p.fields for p in packages])
reloaded = json.loads(as_json)

db = sqlite3.connect(':memory:')
db.execute('create table pkg (name text primary key, version text, size integer, descr text)')
db.executemany('insert into pkg values (?,?,?,?)',
               [(p.name, p.version, p.size_kib, p.fields.get('Description', '')) for p in packages])
db.commit()
rows = db.execute('select * from pkg order by size desc').fetchall()

# Then the stdlib's sources: token lists, ASTs, word counts, compiled code,
# some of it dropped again as a program's working set churns.
src_files = []
for root, dirs, files in os.walk('/usr/lib/python3.11'):
    dirs.sort()
    for fn in sorted(files):
        if fn.endswith('.py'):
            src_files.append(os.path.join(root, fn))
words = collections.Counter()
trees, codes, lines_of, dropped = [], [], {}, 0
word_re = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
i = 0
while anon_rss() < target and src_files:
    path = src_files[i % len(src_files)]
    i += 1
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            src = f.read()
        tree = ast.parse(src, path)
        if i % 3 == 0:
            codes.append(compile(tree, path, 'exec'))
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        continue
    trees.append(tree)
    lines_of[path + '#' + str(i)] = src.splitlines()
    words.update(word_re.findall(src))
    if i % 5 == 0 and len(trees) > 8:   # churn: free an older tree
        del trees[len(trees) // 2]
        dropped += 1
    if i % 400 == 0:
        gc.collect()

amounts = [decimal.Decimal(p.size_kib) / 1024 for p in packages]
stamps = [datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=n * 37) for n in range(20000)]

# Dump the resident pages of the anonymous writable mappings.
PAGE = 4096
dumped = 0
with open('/proc/self/maps') as f:
    maps = f.read().splitlines()
# First the list of resident pages, from pagemap: its entries hold page frame
# numbers, so its buffer is zeroed before anything is dumped, and no entry
# ever becomes an int.
pm = open('/proc/self/pagemap', 'rb', buffering=0)
resident = []
buf = bytearray(1 << 20)
for line in maps:
    parts = line.split(maxsplit=5)
    addr, perms = parts[0], parts[1]
    name = parts[5] if len(parts) > 5 else ''
    if not perms.startswith('rw') or (name and name not in ('[heap]', '[stack]')):
        continue
    lo, hi = (int(x, 16) for x in addr.split('-'))
    for start in range(lo, hi, len(buf) // 8 * PAGE):
        npages = min(len(buf) // 8, (hi - start) // PAGE)
        pm.seek(start // PAGE * 8)
        got = pm.readinto(memoryview(buf)[:npages * 8]) // 8
        for n in range(got):
            if buf[n * 8 + 7] & 0x80:      # bit 63: present
                resident.append(start + n * PAGE)
        buf[:] = bytes(len(buf))
pm.close()
mem = open('/proc/self/mem', 'rb', buffering=0)
with open(1, 'wb', closefd=False) as out:
    for a in resident:
        try:
            mem.seek(a)
            page = mem.read(PAGE)
        except OSError:
            continue
        if len(page) == PAGE:
            out.write(page)
            dumped += 1
print(f'heap dump: {dumped} resident pages ({dumped * PAGE >> 20} MiB) of a python3 that loaded '
      f'{len(loaded)} modules, {len(packages)} packages, {i} source files ({dropped} dropped)',
      file=sys.stderr)
EOF
)

# 2. Assemble.
/usr/bin/python3 -I -S - "$tmp/heap.bin" "$out" "$size_mib" <<'EOF'
import sys
sys.path[:0] = ['/usr/lib/python3.11', '/usr/lib/python3.11/lib-dynload']
import os, random, struct, ctypes, ctypes.util

heap_path, out_path, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
PAGE = 4096
RUN = 16                      # pages per run: 64 KiB
total = size_mib * 256

# Shares of the image's pages by source.  Heap and ELF pages bring zero
# pages of their own (~3 % of them), so the explicit zero share is smaller
# than the ~7 % same-filled total it aims at.
shares = [('heap', 0.41), ('elf', 0.25), ('text', 0.257), ('comp', 0.016),
          ('zero', 0.052), ('same', 0.01)]
budget = {k: int(total * s) for k, s in shares}
budget['heap'] += total - sum(budget.values())

def walk(roots, want):
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for fn in sorted(files):
                p = os.path.join(d, fn)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                if want(p):
                    yield p

def is_elf(p):
    try:
        with open(p, 'rb') as f:
            return f.read(4) == b'\x7fELF'
    except OSError:
        return False

TEXT_EXT = ('.h', '.pm', '.pl', '.pod', '.py', '.txt', '.md', '.html', '.c', '.rst')
def is_text(p):
    if p.endswith(TEXT_EXT) or os.path.basename(p) in ('copyright', 'README', 'NEWS', 'changelog'):
        try:
            with open(p, 'rb') as f:
                head = f.read(512)
            return b'\0' not in head
        except OSError:
            return False
    return False

class FileSource:
    """Pages of a list of files, whole files one after another; each file's
    last page is zero padded, as its mapping would be.  The files come in a
    seeded shuffle so that a small image still samples many of them."""
    def __init__(self, name, paths, cap):
        self.name, self.order, self.cap = name, list(paths), cap
        random.Random(len(paths)).shuffle(self.order)
        self.idx, self.buf, self.wrapped = 0, b'', 0
    def take(self, n):
        need = n * PAGE
        while len(self.buf) < need:
            if not self.order:
                self.buf += bytes(need)
                break
            p = self.order[self.idx]
            self.idx += 1
            if self.idx == len(self.order):
                self.idx, self.wrapped = 0, self.wrapped + 1
            try:
                with open(p, 'rb') as f:
                    data = f.read(self.cap)
            except OSError:
                continue
            if data:
                data += bytes(-len(data) % PAGE)
                self.buf += data
        out, self.buf = self.buf[:need], self.buf[need:]
        return out

class HeapSource:
    def __init__(self, path):
        self.f = open(path, 'rb')
        self.size = os.path.getsize(path)
        self.wrapped = 0
    def take(self, n):
        out = b''
        while len(out) < n * PAGE:
            b = self.f.read(n * PAGE - len(out))
            if not b:
                if self.size == 0:
                    return bytes(n * PAGE)
                self.f.seek(0)
                self.wrapped += 1
                continue
            out += b
        return out

# At most the first 128 KiB of each binary: a process touches a part of each
# mapping (headers, symbol tables, some code), and a few huge libraries
# (libLLVM, ...) would otherwise be most of the share.
elf = FileSource('elf', sorted(walk(['/usr/bin', '/usr/lib/x86_64-linux-gnu'], is_elf)), 128 << 10)
text = FileSource('text', sorted(walk(['/usr/share/doc', '/usr/share/perl', '/usr/include',
                                       '/usr/lib/python3.11'], is_text)), 1 << 20)
comp = FileSource('comp', sorted(walk(['/usr/share/doc'], lambda p: p.endswith('.gz'))), 1 << 20)
heap = HeapSource(heap_path)

# Fill words seen in real memory: all ones, glibc/kernel poison and debug
# fills, small counters and flags replicated over a table.
SAME_WORDS = [0xffffffffffffffff, 0x6b6b6b6b6b6b6b6b, 0x5a5a5a5a5a5a5a5a,
              0xdeadbeefdeadbeef, 0x0101010101010101, 0x0000000100000001,
              0xcccccccccccccccc, 0x2020202020202020, 0x00000000ffffffff]

rng = random.Random(0x7a72616d)       # "zram"
left = dict(budget)
taken = {k: 0 for k in budget}
kinds_of = []                         # the source of each page, for the report
with open(out_path, 'wb') as out:
    written = 0
    while written < total:
        kinds = [k for k in left if left[k] > 0]
        k = rng.choices(kinds, weights=[left[x] for x in kinds])[0]
        if k in ('zero', 'same'):
            n = min(left[k], rng.choice([1, 1, 1, 2, 2, 4, 8, 16]))
        else:
            n = min(left[k], RUN)
        n = min(n, total - written)
        if k == 'zero':
            data = bytes(n * PAGE)
        elif k == 'same':
            data = struct.pack('<Q', rng.choice(SAME_WORDS)) * (n * PAGE // 8)
        else:
            data = {'heap': heap, 'elf': elf, 'text': text, 'comp': comp}[k].take(n)
        out.write(data)
        kinds_of.extend([k] * n)
        left[k] -= n
        taken[k] += n
        written += n

# Composition, read back from the file itself.
lzo = None
try:
    lib = ctypes.CDLL(ctypes.util.find_library('lzo2') or 'liblzo2.so.2')
    if lib.__lzo_init_v2(0x20a0, 2, 4, 8, 4, 8, 8, 8, 8, 48) == 0:   # as lzo_init() calls it: LZO_VERSION, then type sizes on x86-64
        lzo = lib
except (OSError, AttributeError):
    pass
if lzo:
    wrk = ctypes.create_string_buffer(16384 * 8)   # LZO1X_1_MEM_COMPRESS
    dst = ctypes.create_string_buffer(PAGE + PAGE // 16 + 64 + 3)
    dlen = ctypes.c_ulong()
# A page that compresses to zs_huge_class_size() or more is stored raw.
# 3632 bytes with 4 KiB pages and zspages of up to 8 pages (Linux 6.x's
# CONFIG_ZSMALLOC_CHAIN_SIZE=8), so this estimate follows zram's
# huge_pages closely (fio-jobs/README.md).
HUGE = 3632
stat = {k: [0, 0, 0, 0] for k in budget}   # same-filled, of them zero, lzo bytes, ~huge
with open(out_path, 'rb') as f:
    for k in kinds_of:
        page = f.read(PAGE)
        st = stat[k]
        if page == page[:8] * (PAGE // 8):
            st[0] += 1
            st[1] += page[:8] == bytes(8)
            continue
        if lzo:
            lzo.lzo1x_1_compress(page, PAGE, dst, ctypes.byref(dlen), wrk)
            c = dlen.value
            if c >= HUGE:
                st[3] += 1
                c = PAGE
            st[2] += c
print(f'{out_path}: {size_mib} MiB, {total} pages of 4 KiB')
print('  source   pages       %   same   zero' + ('   lzo ratio  ~huge' if lzo else ''))
for k, _ in shares:
    st = stat[k]
    line = f'  {k:5} {taken[k]:8} {100 * taken[k] / total:6.1f} % {st[0]:6} {st[1]:6}'
    if lzo:
        ratio = taken[k] * PAGE / st[2] if st[2] else float('inf')
        line += f'  {ratio:10.2f} {st[3]:6}'
    print(line)
same, zero, compr, huge = (sum(st[i] for st in stat.values()) for i in range(4))
for s in (heap, elf, text, comp):
    if s.wrapped:
        print(f'  note: the {getattr(s, "name", "heap")} source ran out and was reused {s.wrapped} time(s)')
print(f'  same-filled pages {same} ({100 * same / total:.1f} %, of them zero {zero})')
if lzo:
    print(f'  lzo1x_1: {compr} bytes, ratio {total * PAGE / max(compr, 1):.2f} (same-filled pages cost 0), '
          f'~huge pages {huge} ({100 * huge / total:.1f} %, compressed to >= {HUGE} bytes, stored raw)')
else:
    print('  (liblzo2 not found: no compression estimate)')
EOF
