#!/usr/bin/python3
"""The arithmetic of fio-jobs/run-bench.sh, which is shell: it reads fio's
JSON and turns the raw measurements into the Markdown report and the
chart's data.

  bench-report.py fio JSON JOBNAME
      prints "MB/s IOPS p99_us status" for the job JOBNAME in fio's JSON
      output (fio's nbd engine prints a line to stdout before the JSON, so
      everything before the first '{' line is skipped).  MB/s and IOPS add
      reads and writes; p99 is the higher of the two directions' total
      (submission + completion) latency percentiles.  status is ok, or fio's error number.

  bench-report.py fio-cpu JSON JOBNAME SAMPLES HZ
      as fio, followed by "lat_us cpu_us usr_us sys_us ctx": the mean total
      latency, and per request the CPU time of all CPUs (busy: user and
      nice; system, irq and softirq) and the context switches, from
      SAMPLES (run-bench-local.sh's: "time_us" then /proc/stat's cpu line
      in clock ticks of 1/HZ s, then ctxt) taken while the job ran: the
      job_runtime before fio's timestamp_ms.  "-" where there are too few
      samples.

  bench-report.py report RAW.tsv HEADER.md OUT.md CHART.dat
      RAW.tsv has one line per measurement (see COLUMNS); the report gives
      medians over the repetitions, each with its ratio to uzram's.

Debian's /usr/bin/python3, standard library only.
"""
import json
import math
import statistics
import sys

# Contenders in the order the report shows them, with their long names.
CONTENDERS = [
    ('uzram', 'uzram (this plugin)'),
    ('null', 'nbdkit null'),
    ('sparse', 'nbdkit memory sparse'),
    ('zstd', 'nbdkit memory zstd'),
    ('kzram', 'kernel zram lzo'),
]
NAMES = dict(CONTENDERS)

# RAW.tsv: kind is job (a fio job), copy (the image's copy-in), scale (a
# scaling point), empty (an empty disk).  Figures are "-" where there is none.
COLUMNS = ['kind', 'contender', 'job', 'rep', 'disk', 'data_bytes', 'mbps', 'iops',
           'p99_us', 'secs', 'rss_kib', 'anon_kib', 'mem_used', 'fixed_kib', 'status']


def fio_figures(path, jobname):
    with open(path, errors='replace') as f:
        text = f.read()
    start = text.find('\n{')
    start = 0 if text.startswith('{') else start + 1
    data = json.loads(text[start:])
    for job in data['jobs']:
        if job['jobname'] != jobname:
            continue
        mbps = iops = 0.0
        p99 = 0.0
        for d in ('read', 'write'):
            r = job[d]
            if r['io_bytes'] == 0:
                continue
            mbps += r['bw_bytes'] / 1e6
            iops += r['iops']
            # Total latency (lat_percentiles=1 in the jobs): submission plus
            # completion.  clat alone misses the time a synchronous device
            # (the kernel's zram under libaio) spends inside io_submit.
            pct = r.get('lat_ns', {}).get('percentile') or r.get('clat_ns', {}).get('percentile', {})
            p99 = max(p99, pct.get('99.000000', 0) / 1000)
        status = 'ok' if job['error'] == 0 else 'error%d' % job['error']
        return '%.1f %.0f %.0f %s' % (mbps, iops, p99, status)
    return '- - - nojob'


def fio_cpu(path, jobname, samples, hz):
    with open(path, errors='replace') as f:
        text = f.read()
    start = text.find('\n{')
    start = 0 if text.startswith('{') else start + 1
    data = json.loads(text[start:])
    figs = fio_figures(path, jobname)
    job = [j for j in data['jobs'] if j['jobname'] == jobname]
    if not job or figs.endswith('nojob'):
        return figs + ' - - - - -'
    job = job[0]
    ios = sum(job[d]['total_ios'] for d in ('read', 'write'))
    lat = sum(job[d]['lat_ns']['mean'] * job[d]['total_ios'] for d in ('read', 'write')
              if job[d]['total_ios']) / ios / 1000 if ios else None
    iops = float(figs.split()[1])
    # The measured job ran for job_runtime up to fio's report; leave a
    # quarter second at either end for the sampling interval.
    end = data['timestamp_ms'] * 1000 - 250000
    begin = end - job['job_runtime'] * 1000 + 500000
    rows = []
    with open(samples) as f:
        for line in f:
            v = line.split()
            if len(v) >= 9 and begin <= int(v[0]) <= end:
                rows.append([int(x) for x in v])
    if len(rows) < 2 or not iops:
        return figs + ' %s - - - -' % ('-' if lat is None else '%.1f' % lat)
    a, b = rows[0], rows[-1]
    reqs = iops * (b[0] - a[0]) / 1e6
    tick = 1e6 / hz
    d = [y - x for x, y in zip(a, b)]
    # /proc/stat's cpu line: user nice system idle iowait irq softirq steal ...
    usr = (d[1] + d[2]) * tick / reqs
    sys_ = (d[3] + d[6] + d[7]) * tick / reqs
    ctx = d[-1] / reqs
    return figs + ' %.1f %.2f %.2f %.2f %.3f' % (lat, usr + sys_, usr, sys_, ctx)


def num(s):
    try:
        v = float(s)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=None):
    if v is None:
        return '-'
    if digits is None:
        digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return '%.*f' % (digits, v)


def cell(v, base, digits=None):
    """A figure and its ratio to uzram's."""
    if v is None:
        return 'fail'
    if base is None or base == 0:
        return fmt(v, digits)
    return '%s (%.2fx)' % (fmt(v, digits), v / base)


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip('\n').split('\t')
            if parts[0] == 'kind' or len(parts) != len(COLUMNS):
                continue
            rows.append(dict(zip(COLUMNS, parts)))
    return rows


def group(rows, kind):
    """{(contender, job): [rows]} for one kind, in first-seen order."""
    g = {}
    for r in rows:
        if r['kind'] == kind:
            g.setdefault((r['contender'], r['job']), []).append(r)
    return g


def med(rs, col, scale=1.0):
    m = median([num(r[col]) for r in rs if r['status'] == 'ok'])
    return None if m is None else m * scale


def mib_held(rs, contender):
    """Memory the contender held for the data: the kernel's mem_used_total,
    the server's RSS growth for the others."""
    if contender == 'kzram':
        return med(rs, 'mem_used', 1 / 2**20)
    return med(rs, 'rss_kib', 1 / 1024)


def report(raw, header, out, dat):
    rows = load(raw)
    present = [c for c, _ in CONTENDERS if any(r['contender'] == c for r in rows)]
    lines = [open(header).read().rstrip('\n'), '']

    # fio jobs: one table per figure, jobs down, contenders across.
    jobs = group(rows, 'job')
    jobnames = []
    for (_, j) in jobs:
        if j not in jobnames:
            jobnames.append(j)
    chart = {}
    if jobnames:
        lines += ['## fio jobs', '',
                  'Medians over the repetitions; in brackets the ratio to uzram '
                  '(for latency and memory lower is better).  "fail": no run of '
                  'that pair completed (see the log).  Memory: the growth of '
                  'the nbdkit process\'s VmRSS over the job (the data it holds, '
                  'plus its buffers), for the kernel mm_stat\'s mem_used_total; '
                  'and uzram\'s own mem_used_total where its control filesystem '
                  'shows it.',
                  '']
        figures = [('MB/s', 'mbps', 1.0, None), ('IOPS', 'iops', 1.0, 0),
                   ('p99 latency (submission + completion), us', 'p99_us', 1.0, None),
                   ('memory held, MiB', None, None, None)]
        # uzram's own mem_used_total too, where its control filesystem gave it.
        uzram_used = any(num(r['mem_used']) is not None for (c, _), rs in jobs.items()
                         if c == 'uzram' for r in rs)
        for title, col, scale, digits in figures:
            extra = col is None and uzram_used
            lines += ['### ' + title, '',
                      '| job | ' + ' | '.join(NAMES[c] for c in present) +
                      (' | uzram mm_stat mem_used_total' if extra else '') + ' |',
                      '| --- |' + ' ---: |' * (len(present) + extra)]
            for j in jobnames:
                vals = {}
                for c in present:
                    rs = jobs.get((c, j), [])
                    if not rs:
                        vals[c] = 'skip'
                        continue
                    if all(r['status'] == 'n/a' for r in rs):
                        vals[c] = 'n/a'
                        continue
                    vals[c] = mib_held(rs, c) if col is None else med(rs, col, scale)
                    if col == 'mbps':
                        chart.setdefault(j, {})[c] = vals[c]
                base = vals.get('uzram') if isinstance(vals.get('uzram'), float) else None
                cells = [v if isinstance(v, str) else cell(v, base, digits) for v in
                         (vals[c] for c in present)]
                if extra:
                    used = med(jobs.get(('uzram', j), []), 'mem_used', 1 / 2**20)
                    cells.append('-' if used is None else cell(used, base, digits))
                lines.append('| %s | %s |' % (j, ' | '.join(cells)))
            lines.append('')
        # Verify outcomes.
        ver = [(c, rs) for (c, j), rs in jobs.items()
               if j == 'verify' and any(r['status'] != 'n/a' for r in rs)]
        if ver:
            lines += ['verify (crc32c, 2 jobs x depth 16): ' + ', '.join(
                '%s %s' % (NAMES[c], 'ok' if all(r['status'] == 'ok' for r in rs)
                           else 'FAILED (%s)' % ','.join(sorted({r['status'] for r in rs})))
                for c, rs in ver), '']

    # The copy-in of the realistic image.
    copy = group(rows, 'copy')
    copy_fig = {}
    if copy:
        lines += ['## Copy-in of the realistic page image', '',
                  'nbdcopy IMAGE into each NBD server; `dd bs=1M oflag=direct` into '
                  'the kernel\'s zram.  Medians; ratios to uzram.  RSS growth: the '
                  'server\'s VmRSS after minus before.  mem_used_total: mm_stat\'s (uzram\'s '
                  'from its control filesystem, or from its statistics at unload after '
                  'one more, untimed copy).', '',
                  '| contender | seconds | MB/s | RSS growth, MiB | mem_used_total, MiB |',
                  '| --- | ---: | ---: | ---: | ---: |']
        for c in present:
            rs = copy.get((c, 'copy-in'))
            if not rs:
                continue
            used = med(rs, 'mem_used', 1 / 2**20)
            if used is None:     # uzram without its control filesystem
                used = med([r for r in rows if r['kind'] == 'mmstat' and r['contender'] == c],
                           'mem_used', 1 / 2**20)
            copy_fig[c] = dict(secs=med(rs, 'secs'), mbps=med(rs, 'mbps'),
                               rss=med(rs, 'rss_kib', 1 / 1024) if c != 'kzram' else None,
                               used=used)
        base = copy_fig.get('uzram', {})
        for c in present:
            f = copy_fig.get(c)
            if not f:
                continue
            lines.append('| %s | %s | %s | %s | %s |' % (
                NAMES[c], cell(f['secs'], base.get('secs')), cell(f['mbps'], base.get('mbps')),
                '-' if f['rss'] is None else cell(f['rss'], base.get('rss')),
                '-' if f['used'] is None else cell(f['used'], base.get('used'))))
            chart.setdefault('copy-in', {})[c] = f['mbps']
        lines.append('')

    # issue 5's targets, where the run has the figures for them.
    checks = []
    def ratio(a, b):
        return a / b if a is not None and b else None
    u, k, z = copy_fig.get('uzram', {}), copy_fig.get('kzram', {}), copy_fig.get('zstd', {})
    checks.append(('copy-in time vs dd into kernel zram', ratio(u.get('secs'), k.get('secs')), '<=', 1.3))
    checks.append(('copy-in time vs nbdkit memory zstd', ratio(u.get('secs'), z.get('secs')), '<=', 0.4))
    for j, lim in (('randwrite-4k-qd16', 0.80), ('randread-4k-qd16', 0.90)):
        a = med(jobs.get(('uzram', j), []), 'iops')
        b = med(jobs.get(('sparse', j), []), 'iops')
        checks.append(('%s IOPS vs nbdkit memory sparse' % j, ratio(a, b), '>=', lim))
    checks.append(('memory growth on the image vs kernel mem_used_total',
                   ratio(u.get('rss'), k.get('used')), '<=', 1.10))
    checks = [c for c in checks if c[1] is not None]
    if checks:
        lines += ['## issue 5\'s targets', '', '| target | measured | limit | |',
                  '| --- | ---: | ---: | --- |']
        for name, v, op, lim in checks:
            ok = v <= lim if op == '<=' else v >= lim
            lines.append('| %s | %.2fx | %s %.2fx | %s |' % (name, v, op, lim, 'met' if ok else 'MISSED'))
        lines.append('')

    # Scaling.
    scale = [r for r in rows if r['kind'] == 'scale']
    if scale:
        lines += ['## How cost grows with the work', '',
                  'The image repeated to DATA bytes, written with nbdcopy (dd for the '
                  'kernel) into a disk of DISK bytes, then 4 KiB random reads at depth 16 '
                  'over the data.  Memory held: as in the copy-in (the growth of the '
                  'server\'s VmRSS; the kernel\'s mem_used_total).  Fixed cost: what the '
                  'disk costs before any data, the server\'s VmRSS at start, or the kernel '
                  'zram\'s slot table (the growth of VmallocUsed when disksize is set: '
                  'not in its mm_stat).  One run each.  The image\'s first 64 MiB '
                  'compress less well than the whole (compare the kernel\'s row): memory '
                  'per stored GiB compares across contenders on a row, and down a column '
                  'from 256 MiB of data on.', '',
                  '| contender | disk | data | copy-in MB/s | randread IOPS | memory held, MiB | MiB per stored GiB | fixed cost, MiB |',
                  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
        pts = {}
        for r in scale:
            pts.setdefault((r['contender'], r['disk'], r['data_bytes']), []).append(r)
        for c in present:
            for (cc, disk, data), rs in pts.items():
                if cc != c:
                    continue
                copy_rs = [r for r in rs if r['job'] == 'copy']
                read_rs = [r for r in rs if r['job'] == 'randread']
                held = mib_held(copy_rs, c)
                gib = int(data) / 2**30
                lines.append('| %s | %s | %s | %s | %s | %s | %s | %s |' % (
                    NAMES[c], disk, human(int(data)), fmt(med(copy_rs, 'mbps')),
                    fmt(med(read_rs, 'iops'), 0), fmt(held),
                    fmt(held / gib if held is not None else None),
                    fmt(med(copy_rs, 'fixed_kib', 1 / 1024))))
        lines.append('')

    empty = [r for r in rows if r['kind'] == 'empty']
    if empty:
        lines += ['## An empty disk', '',
                  'The server\'s VmRSS and RssAnon while a client is connected to an '
                  'empty disk of that size (one block read, nothing written); for the '
                  'kernel\'s zram, its slot table (VmallocUsed\'s growth when disksize '
                  'is set).', '',
                  '| contender | disk | VmRSS, MiB | RssAnon, MiB | kernel table, MiB |',
                  '| --- | ---: | ---: | ---: | ---: |']
        for r in empty:
            mib = lambda col: fmt(num(r[col]) / 1024) if num(r[col]) is not None else '-'
            lines.append('| %s | %s | %s | %s | %s |' % (NAMES[r['contender']], r['disk'],
                         mib('rss_kib'), mib('anon_kib'), mib('fixed_kib')))
        lines.append('')

    with open(out, 'w') as f:
        f.write('\n'.join(lines))
    # Chart data: one row per job, one column per contender (MB/s).
    with open(dat, 'w') as f:
        f.write('job\t' + '\t'.join('"%s"' % NAMES[c] for c in present) + '\n')
        for j, vals in chart.items():
            f.write(j + '\t' + '\t'.join(
                fmt(vals.get(c), 1) if vals.get(c) is not None else '0' for c in present) + '\n')


def human(n):
    for unit, shift in (('GiB', 30), ('MiB', 20), ('KiB', 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return '%d %s' % (n >> shift, unit)
    return str(n)


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'fio':
        try:
            print(fio_figures(sys.argv[2], sys.argv[3]))
        except (OSError, ValueError, KeyError) as e:
            print('- - - badjson')
            print('bench-report: %s: %s' % (sys.argv[2], e), file=sys.stderr)
    elif len(sys.argv) == 6 and sys.argv[1] == 'fio-cpu':
        try:
            print(fio_cpu(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
        except (OSError, ValueError, KeyError, ZeroDivisionError) as e:
            print('- - - badjson - - - - -')
            print('bench-report: %s: %s' % (sys.argv[2], e), file=sys.stderr)
    elif len(sys.argv) == 6 and sys.argv[1] == 'report':
        report(*sys.argv[2:])
    else:
        sys.exit(__doc__)
