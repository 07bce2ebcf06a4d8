#!/usr/bin/env bash
# abi.sh - dump and compare the ABI of a shared library with libabigail
# (Debian's abigail-tools: abidw, abidiff). One place for the options, used
# by the abi_check and abi_rules tests and by scripts/abi-baseline.sh.
#
#   abi.sh dump  LIB HEADERS_DIR OUT.abi
#       Write LIB's ABI, as seen from the headers in HEADERS_DIR, to OUT.abi.
#   abi.sh check LIB HEADERS_DIR BASELINE.abi SUPPRESSIONS
#       Dump LIB the same way and compare it against BASELINE.abi,
#       allowing what SUPPRESSIONS allows.
#
# Exit status: 0 same ABI (or only allowed additions), 1 the ABI changed,
# 2 usage or setup error (no debug info, tool missing, file missing).
set -euo pipefail

die() {
    echo "abi.sh: $*" >&2
    exit 2
}

# abidw reads the types from DWARF: without it the dump would hold symbols
# only and every type change would go unseen.
need_debug_info() {
    [ -f "$1" ] || die "no library at $1 (build it first)"
    if ! readelf -S --wide "$1" 2>/dev/null | grep -q '\.debug_info'; then
        die "$1 has no debug information (.debug_info): abidw needs DWARF to see the" \
            "types. Build with CMAKE_BUILD_TYPE=Debug or RelWithDebInfo (both use -g)."
    fi
}

need_tool() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install abigail-tools (scripts/setup-debian.sh)"
}

# dump_abi LIB HEADERS_DIR OUT: the one abidw command line.
dump_abi() {
    # Only types declared in the public headers count (--headers-dir,
    # --drop-private-types). Paths, source locations and DT_NEEDED are
    # left out so the dump does not depend on where or with what it was
    # built, only on the ABI.
    abidw --exported-interfaces-only --headers-dir "$2" --drop-private-types --no-corpus-path \
        --no-comp-dir-path --no-show-locs --no-elf-needed --out-file "$3" "$1"
}

cmd="${1:-}"
case "$cmd" in
dump)
    [ $# -eq 4 ] || die "usage: abi.sh dump LIB HEADERS_DIR OUT.abi"
    lib="$2" headers="$3" out="$4"
    need_tool abidw
    need_debug_info "$lib"
    [ -d "$headers" ] || die "no headers directory $headers"
    dump_abi "$lib" "$headers" "$out"
    ;;
check)
    [ $# -eq 5 ] || die "usage: abi.sh check LIB HEADERS_DIR BASELINE.abi SUPPRESSIONS"
    lib="$2" headers="$3" baseline="$4" suppr="$5"
    need_tool abidw
    need_tool abidiff
    need_debug_info "$lib"
    [ -d "$headers" ] || die "no headers directory $headers"
    [ -f "$baseline" ] || die "no baseline $baseline"
    [ -f "$suppr" ] || die "no suppression file $suppr"
    # Compare two dumps made the same way, not the dump against the ELF
    # file: abidiff 2.2 crashes when the struct suppression meets an opaque
    # handle that is declaration-only on one side and defined on the other,
    # and the headers directory would filter out every change (a dump
    # without source locations cannot be matched against it).
    current="$(mktemp)"
    trap 'rm -f "$current"' EXIT
    dump_abi "$lib" "$headers" "$current"
    set +e
    report="$(abidiff --suppressions "$suppr" "$baseline" "$current" 2>&1)"
    rc=$?
    set -e
    if [ $((rc & 3)) -ne 0 ]; then
        echo "$report"
        die "abidiff failed (exit $rc) comparing $baseline and $lib"
    fi
    # In abidiff 2.2 the "member appended at the end" suppression hides the
    # whole struct, including a change to one of its existing members. So a
    # second pass, unsuppressed and reporting only local ("leaf") changes,
    # must show no change or deletion of an existing data member.
    members=""
    if [ $rc -eq 0 ]; then
        set +e
        leaf="$(abidiff --leaf-changes-only "$baseline" "$current" 2>&1)"
        leaf_rc=$?
        set -e
        if [ $((leaf_rc & 3)) -ne 0 ]; then
            echo "$leaf"
            die "abidiff --leaf-changes-only failed (exit $leaf_rc) comparing $baseline and $lib"
        fi
        if echo "$leaf" | grep -Eq 'data member (change|deletion)'; then
            members="$leaf"
        fi
    fi
    if [ $rc -eq 0 ] && [ -z "$members" ]; then
        echo "abi.sh: $lib is ABI-compatible with $baseline"
        echo "$report"
        exit 0
    fi
    if [ -n "$members" ]; then
        echo "$members"
        echo "abi.sh: a struct that grew at the end also changed existing members (above)."
        rc=4
    else
        echo "$report"
    fi
    kind="a change"
    [ $((rc & 8)) -ne 0 ] && kind="an incompatible change"
    cat <<EOF
abi.sh: FAIL: $lib has $kind against the baseline $baseline (abidiff exit $rc).
Allowed without a baseline change: new functions, and members appended at the
end of a versioned struct. Anything else listed above (a removed function, a
changed signature, a member inserted, moved or retyped) breaks programs and
plugins built against libtapestore.so.0: undo it, or see "Changing the ABI" in
docs/abi.md.
At a release (after a reviewed, compatible change), refresh the baseline with
    scripts/abi-baseline.sh [BUILD_DIR]
and commit tests/abi/libtapestore.abi.
EOF
    exit 1
    ;;
*)
    die "usage: abi.sh dump LIB HEADERS_DIR OUT.abi | abi.sh check LIB HEADERS_DIR BASELINE.abi SUPPRESSIONS"
    ;;
esac
