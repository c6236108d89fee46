#!/bin/bash
# Swap through uzram attached --via disk (see swap-test.sh).
exec bash "$top_srcdir/tests/swap-test.sh" disk
