#!/bin/bash
# README's first command: installs what uzram needs, builds it, brings up a
# 1 GiB device with the defaults (lzo, attached as a loop device over the
# control filesystem's `disk` file) and shows its status.
#   scripts/up.sh [uzram up options...]     e.g. --swap, --size 4G
set -e
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/install-deps.sh" --run
"$src/scripts/build.sh"
[ $# -gt 0 ] || set -- --size 1G
"$src/scripts/uzram" up "$@"
"$src/scripts/uzram" status
