#!/bin/bash
# A file system through uzram attached --via nbdfuse (see fs-test.sh).
exec bash "$top_srcdir/tests/fs-test.sh" nbdfuse
