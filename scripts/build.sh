#!/bin/bash
# Installs what building needs, if anything is missing
# (scripts/install-deps.sh --build: no test tools), then builds it in
# BUILDDIR (default: build/ in the source tree) with the given configure
# options.  The source tree itself is never configured, so that any number
# of build folders (plain, ASan, TSan, fuzz) can stand side by side.
#   scripts/build.sh [BUILDDIR [configure options...]]
set -e
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}; shift || true
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
"$src/scripts/install-deps.sh" --build
cd "$src"
[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] ||
    autoreconf -fi
mkdir -p "$build"
cd "$build"
# Reconfigure when the options change.
want="$*"
if [ ! -f Makefile ] || [ "$(cat .uzram-configure-args 2>/dev/null)" != "$want" ]; then
    "$src/configure" --enable-werror "$@"
    echo "$want" > .uzram-configure-args
fi
make -j"$(nproc)"
