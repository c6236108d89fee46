#!/bin/bash
# A file system through uzram attached --via ublk (see fs-test.sh), in a
# guest where this kernel has no ublk (ublk-lib.sh).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/ublk-lib.sh"
ublk_here_or_guest "$@"
bash "$top_srcdir/tests/fs-test.sh" ublk
