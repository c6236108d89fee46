#!/bin/bash
# A file system through uzram attached --via disk (see fs-test.sh).
exec bash "$top_srcdir/tests/fs-test.sh" disk
