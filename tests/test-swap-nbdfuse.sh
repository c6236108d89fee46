#!/bin/bash
# Swap through uzram attached --via nbdfuse (see swap-test.sh).
exec bash "$top_srcdir/tests/swap-test.sh" nbdfuse
