#!/usr/bin/env bash
# rules.sh - proves that the abi_check test (abi.sh check with
# libtapestore.suppr) allows exactly the compatible changes of docs/abi.md:
# it builds a small shared library (rules/toy.c) in variants, dumps the
# plain one as a baseline the way scripts/abi-baseline.sh does, and checks
# each variant against it with the real suppression file.
#
#   rules.sh CC WORK_DIR
#
# Exit status 0 when every case gave the expected verdict.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cc="${1:?usage: rules.sh CC WORK_DIR}"
work="${2:?usage: rules.sh CC WORK_DIR}"
rm -rf "$work"
mkdir -p "$work"

build() { # build OUT [CFLAGS...]: the toy library, plain (no sanitizers)
    local out="$1"
    shift
    "$cc" -g -O0 -shared -fPIC -Wall -Wextra -Werror -I"$here/rules" \
        "$here/rules/toy.c" -o "$out" -Wl,-soname,libtoy.so.0 "$@"
}

build "$work/libtoy-base.so"
"$here/abi.sh" dump "$work/libtoy-base.so" "$here/rules" "$work/toy.abi"

failures=0
# expect VERDICT NAME [CFLAGS...]: VERDICT is pass (exit 0) or fail (exit 1).
expect() {
    local want="$1" name="$2"
    shift 2
    local lib="$work/libtoy-$name.so" rc=0
    build "$lib" "$@"
    "$here/abi.sh" check "$lib" "$here/rules" "$work/toy.abi" "$here/libtapestore.suppr" \
        >"$work/$name.out" 2>&1 || rc=$?
    local got=other
    [ $rc -eq 0 ] && got=pass
    [ $rc -eq 1 ] && got=fail
    if [ "$got" = "$want" ]; then
        echo "ok - $name: $want"
    else
        echo "not ok - $name: expected $want, got exit $rc"
        sed 's/^/#   /' "$work/$name.out"
        failures=$((failures + 1))
    fi
    if [ "$want" = fail ] && [ $rc -eq 1 ] && ! grep -q 'scripts/abi-baseline.sh' "$work/$name.out"; then
        echo "not ok - $name: the failure does not say how to refresh the baseline"
        failures=$((failures + 1))
    fi
}

# Allowed: the two compatible changes, alone and together.
expect pass unchanged
expect pass added_function -DADD_FUNC
expect pass member_appended -DAPPEND_MEMBER
expect pass all_compatible -DALL_COMPATIBLE
expect pass opaque_handle_layout_changed -DPRIVATE_CHANGE
# Refused: everything else.
expect fail removed_function -DREMOVE_FUNC
expect fail changed_signature -DCHANGE_SIG
expect fail member_inserted_mid_struct -DINSERT_MID
expect fail appended_but_member_retyped -DRETYPE_AND_APPEND
expect fail added_function_without_tape_prefix -DADD_UNPREFIXED_FUNC
expect fail soname_changed -Wl,-soname,libtoy.so.1

# A library without debug information cannot be checked: a clear error
# (exit 2), not a pass on symbols alone.
"$cc" -O0 -shared -fPIC -I"$here/rules" "$here/rules/toy.c" -o "$work/libtoy-nodebug.so"
rc=0
"$here/abi.sh" check "$work/libtoy-nodebug.so" "$here/rules" "$work/toy.abi" "$here/libtapestore.suppr" \
    >"$work/nodebug.out" 2>&1 || rc=$?
if [ $rc -eq 2 ] && grep -q 'no debug information' "$work/nodebug.out"; then
    echo "ok - no_debug_info: refused"
else
    echo "not ok - no_debug_info: expected exit 2 naming the missing debug info, got $rc"
    sed 's/^/#   /' "$work/nodebug.out"
    failures=$((failures + 1))
fi

if [ $failures -ne 0 ]; then
    echo "rules.sh: $failures case(s) gave the wrong verdict"
    exit 1
fi
echo "rules.sh: every case gave the expected verdict"
