#!/bin/bash
# Replays the fuzz corpora and every recorded crash (tests/fuzz/) through
# every fuzz target, built without libFuzzer: what once crashed stays fixed.
source "$top_srcdir/tests/functions.sh"
for t in zsmalloc engine decompress; do
    dirs=()
    for d in "$top_srcdir/tests/fuzz/corpus-$t" "$top_srcdir/tests/fuzz/crashes"; do
        [ -d "$d" ] && [ -n "$(ls "$d")" ] && dirs+=("$d")
    done
    # The crashes folder holds both targets' inputs, named TARGET-crash-*.
    files=()
    for d in "${dirs[@]}"; do
        case $d in
        */crashes) for f in "$d/$t-"*; do [ -f "$f" ] && files+=("$f"); done ;;
        *) files+=("$d") ;;
        esac
    done
    [ ${#files[@]} -gt 0 ] || fail "no corpus for fuzz-$t in tests/fuzz/"
    timeout 600 "$top_builddir/tests/fuzz-$t-replay" "${files[@]}" || fail "fuzz-$t replay failed"
done
echo OK
