#!/usr/bin/env bash
# The benchmark runner still runs: fio-jobs/run-bench.sh in quick mode
# (16 MiB regions, 1 s per job, one repetition, a 16 MiB page image)
# against the plugin alone, every job in fio-jobs/ plus the copy-in, and
# its Markdown table has a number for every job in every figure.
# Not a benchmark: the figures are not checked, only that there are some.
source "$top_srcdir/tests/functions.sh"
need_tool nbdkit fio nbdcopy nbdinfo nbdsh gnuplot numfmt
[ -f "$PLUGIN" ] || fail "$PLUGIN is not built"

out=$tmpdir/results
timeout 120 env PLUGIN="$PLUGIN" "$top_srcdir/fio-jobs/run-bench.sh" --quick \
    --contenders uzram --out "$out" > "$tmpdir/report.md" 2> "$tmpdir/log" ||
    { cat "$tmpdir/log"; fail "run-bench.sh failed"; }
report=$out/latest-quick.md
[ -s "$report" ] || { cat "$tmpdir/log"; fail "no report"; }
[ -s "$out/latest-quick.png" ] || fail "no chart"
[ -s "$out/latest-quick.tsv" ] || fail "no raw figures"

# Every job's row in the MB/s, IOPS, p99 and memory tables starts with a
# number; so does uzram's copy-in row.
jobs=$(cd "$top_srcdir/fio-jobs" && ls *.fio | sed 's/\.fio$//')
for j in $jobs; do
    rows=$(grep -c "^| $j | [0-9][0-9.]* (1.00x) |" "$report" || true)
    [ "$rows" = 4 ] || { cat "$report"; fail "job $j: $rows of 4 rows with a number"; }
done
grep -q '^| uzram (this plugin) | [0-9.]* (1.00x) | [0-9.]* (1.00x) | [0-9.]* (1.00x) |' "$report" ||
    { cat "$report"; fail "no copy-in figures"; }
grep -q '^verify (crc32c.*uzram (this plugin) ok' "$report" ||
    { cat "$report"; fail "verify did not pass"; }
grep -A4 '^### IOPS' "$report"
