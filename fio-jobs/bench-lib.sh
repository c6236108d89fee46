# Shared by run-bench.sh, run-bench-local.sh and bench-swap.sh: source it
# after setting $here (this folder) and $prog (the name messages start
# with).  Sets the shell's options and environment, $src, $top_builddir
# and $PLUGIN, and defines die and log; scripts/lib.sh brings wait_for,
# stop_pid and is_mounted.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

src=$(cd "$here/.." && pwd)
: "${top_builddir:=$src/build}"
: "${PLUGIN:=$top_builddir/plugin/.libs/nbdkit-zram-plugin.so}"

die () { echo "$prog: $*" >&2; exit 1; }
log () { echo "$prog: $*" >&2; }

. "$src/scripts/lib.sh"
