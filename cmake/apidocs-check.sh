#!/usr/bin/env bash
# apidocs-check.sh - run doxygen on the API reference's Doxyfile and fail on
# any warning (see cmake/apidocs.cmake).
#
#   apidocs-check.sh build DOXYGEN DOXYFILE WARN_LOG
#       Generate the reference; exit 1 listing every warning if there is one.
#   apidocs-check.sh rules DOXYGEN DOXYFILE WORK_DIR
#       Run the same configuration on small headers that each leave one
#       kind of public symbol undocumented, and check that each fails
#       naming it, and that a fully documented header passes.
set -euo pipefail

# run_doxygen DOXYGEN DOXYFILE WARN_LOG HTML_DIR INPUT [OVERRIDES...]: exit
# status 0 when doxygen passed, wrote nothing to WARN_LOG, and documented
# every header of INPUT (a header or a directory of them).
run_doxygen() {
    local doxygen="$1" doxyfile="$2" log="$3" html="$4" input="$5"
    shift 5
    rm -f "$log"
    local rc=0
    { cat "$doxyfile"; printf '%s\n' "$@"; } | "$doxygen" - >/dev/null || rc=$?
    # FAIL_ON_WARNINGS gives the status; the log must be empty as well.
    if [ $rc -eq 0 ] && [ -s "$log" ]; then
        rc=1
    fi
    # Doxygen warns about undocumented functions and macros only in a
    # documented file: a header without its @file comment would pass
    # silently. A documented header has a page (tapestore.h:
    # tapestore_8h.html).
    local h base page
    for h in $( [ -d "$input" ] && ls "$input"/*.h || echo "$input"); do
        base="$(basename "$h")"
        page="${base//_/__}"
        page="${page//./_8}.html"
        if [ ! -f "$html/$page" ]; then
            echo "$h:1: error: $base has no @file comment, so doxygen does not check its functions and macros" >>"$log"
            rc=1
        fi
    done
    return $rc
}

mode="${1:-}"
case "$mode" in
build)
    [ $# -eq 4 ] || { echo "usage: apidocs-check.sh build DOXYGEN DOXYFILE WARN_LOG" >&2; exit 2; }
    doxygen="$2" doxyfile="$3" log="$4"
    html="$(dirname "$doxyfile")/html"
    input="$(sed -n 's/^INPUT *= *//p' "$doxyfile" | tail -1)"
    rm -rf "$html"
    if run_doxygen "$doxygen" "$doxyfile" "$log" "$html" "$input"; then
        echo "apidocs: no warnings; reference in $html/index.html"
        exit 0
    fi
    echo "apidocs: doxygen warned; every public symbol needs a doc comment (/** */ or /**< */):"
    cat "$log" 2>/dev/null || true
    exit 1
    ;;
rules)
    [ $# -eq 4 ] || { echo "usage: apidocs-check.sh rules DOXYGEN DOXYFILE WORK_DIR" >&2; exit 2; }
    doxygen="$2" doxyfile="$3" work="$4"
    rm -rf "$work"
    mkdir -p "$work"
    failures=0
    # case NAME EXPECT(pass|fail) SYMBOL: $work/NAME/sample.h is the input.
    check_case() {
        local name="$1" want="$2" symbol="$3" dir="$work/$1" got=pass
        run_doxygen "$doxygen" "$doxyfile" "$dir/warnings.log" "$dir/out/html" "$dir/sample.h" \
            "INPUT = $dir/sample.h" \
            "OUTPUT_DIRECTORY = $dir/out" "WARN_LOGFILE = $dir/warnings.log" \
            "STRIP_FROM_PATH = $dir" "STRIP_FROM_INC_PATH = $dir" || got=fail
        if [ "$got" != "$want" ]; then
            echo "not ok - $name: expected $want, got $got"
            sed 's/^/#   /' "$dir/warnings.log" 2>/dev/null || true
            failures=$((failures + 1))
        elif [ "$want" = fail ] && ! grep -q "$symbol" "$dir/warnings.log"; then
            echo "not ok - $name: the warning does not name $symbol"
            sed 's/^/#   /' "$dir/warnings.log"
            failures=$((failures + 1))
        else
            echo "ok - $name: $want"
        fi
    }
    # write_case NAME UNDOC: a header documenting everything except UNDOC.
    write_case() {
        local name="$1" undoc="$2" d
        mkdir -p "$work/$name"
        doc() { [ "$undoc" = "$1" ] && d="" || d="$2"; printf '%s' "$d"; }
        {
            # Without a documented file doxygen would not warn about any
            # function or macro in it: that must fail too.
            doc file '/** @file sample.h A header shaped like tapestore.h. */'; echo
            echo '/** Export marker. */'
            echo '#define TAPE_API'
            echo '#include <stdint.h>'
            doc macro '/** A constant. */'; echo
            echo '#define SAMPLE_LIMIT 128'
            doc opaque '/** An opaque handle. */'; echo
            echo 'typedef struct sample_handle sample_handle;'
            doc fnptr '/** A callback. */'; echo
            echo 'typedef void (*sample_fn)(void *userdata, int level);'
            doc struct '/** A versioned struct. */'; echo
            echo 'typedef struct sample_desc {'
            echo "    unsigned int version; $(doc member '/**< SAMPLE_DESC_VERSION */')"
            echo "    int64_t ts_ms;        /**< ms since start */"
            echo '} sample_desc;'
            doc function '/** Do a thing. */'; echo
            echo 'TAPE_API int sample_do(sample_handle *h, const sample_desc *d);'
        } >"$work/$name/sample.h"
    }
    write_case documented none
    check_case documented pass ""
    write_case undocumented_function function
    check_case undocumented_function fail sample_do
    write_case undocumented_macro macro
    check_case undocumented_macro fail SAMPLE_LIMIT
    write_case undocumented_opaque_typedef opaque
    check_case undocumented_opaque_typedef fail sample_handle
    write_case undocumented_callback_typedef fnptr
    check_case undocumented_callback_typedef fail sample_fn
    write_case undocumented_struct struct
    check_case undocumented_struct fail sample_desc
    write_case undocumented_member member
    check_case undocumented_member fail version
    write_case undocumented_file file
    check_case undocumented_file fail sample.h
    if [ $failures -ne 0 ]; then
        echo "apidocs rules: $failures case(s) wrong"
        exit 1
    fi
    echo "apidocs rules: every undocumented kind fails"
    ;;
*)
    echo "usage: apidocs-check.sh build|rules ..." >&2
    exit 2
    ;;
esac
