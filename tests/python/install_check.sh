#!/bin/sh
# Installs the build into a scratch prefix and imports the installed
# tapestore package with the interpreter the binding was built for: the
# module must find libtapestore.so.0 through its RUNPATH alone.
#   install_check.sh BUILD_DIR PYTHON SITE_DIR_REL WORK_DIR
set -eu
build=$1 python=$2 site=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pkg=$prefix/$site/tapestore
for f in __init__.py __init__.pyi py.typed capi.py; do
  [ -f "$pkg/$f" ] || { echo "$pkg/$f not installed"; exit 1; }
done
so=$(find "$pkg" -name '_capi*.so' | head -n 1)
[ -n "$so" ] || { echo "no _capi*.so in $pkg"; exit 1; }
runpath=$(objdump -p "$so" | awk '/RUNPATH/ {print $2}')
case "$runpath" in
  '$ORIGIN/'*) ;;
  *) echo "RUNPATH of $so is '$runpath', expected \$ORIGIN-relative"; exit 1 ;;
esac
# A scratch prefix is not on sys.path: name the site dir, nothing else
# (no LD_LIBRARY_PATH), and run from elsewhere so the build tree is not found.
cd "$work"
env -u LD_LIBRARY_PATH PYTHONPATH="$prefix/$site" "$python" -c '
import sys, tapestore
assert tapestore.__file__.startswith(sys.argv[1]), tapestore.__file__
with tapestore.open("memory:") as s:
    t = tapestore.Tape(name="installed")
    t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    s.save(t)
    assert s.load(t.id).name == "installed"
print("imported", tapestore.__file__, "library", tapestore.version())
' "$prefix/$site"
# The conformance suite as a provider author outside this project runs it:
# the installed tape-conformance, and python3 -m tapestore.conformance
# finding libtapestore_conformance beside libtapestore (no TAPE_CONFORMANCE_LIB).
cat > "$work/authored.py" <<'PY'
import tapestore

class Authored:
    """A provider written outside the project: the four required methods."""
    def __init__(self, config):
        self.tapes = {}
    def save(self, tape):
        self.tapes[tape.id] = tape.copy()
    def load(self, id):
        return self.tapes.get(id)
    def delete(self, id):
        if self.tapes.pop(id, None) is None:
            raise tapestore.NotFound(id)
    def list(self, query):
        return list(self.tapes.values())

tapestore.register_provider("authored", Authored)
PY
env -u LD_LIBRARY_PATH -u TAPE_CONFORMANCE_LIB PYTHONPATH="$prefix/$site" \
  "$python" -m tapestore.conformance authored '{}' --plugin "$work/authored.py" --only "save" \
  > "$work/conf-py.out" || { cat "$work/conf-py.out"; echo "python -m tapestore.conformance failed"; exit 1; }
grep -q '^ok 1 ' "$work/conf-py.out" || { cat "$work/conf-py.out"; exit 1; }
env -u LD_LIBRARY_PATH "$prefix/bin/tape-conformance" memory '{}' > "$work/conf-c.out" 2>&1 ||
  { cat "$work/conf-c.out"; echo "installed tape-conformance failed"; exit 1; }
grep -q '^# .* 0 failed' "$work/conf-c.out" || { cat "$work/conf-c.out"; exit 1; }
[ -f "$prefix/include/tapestore/tapestore_conformance.h" ] || { echo "tapestore_conformance.h not installed"; exit 1; }
echo "installed conformance runners work"
# With the interpreter's own install prefix (sysconfig's data dir: /usr/local
# for Debian's python3, the default CMAKE_INSTALL_PREFIX) the package dir is
# on sys.path, so a default install imports with no environment variable.
"$python" -c '
import os, sys, sysconfig
d = os.path.join(sysconfig.get_path("data"), sys.argv[1])
assert d in sys.path, f"{d} is not on sys.path {sys.path}"
print("default install dir on sys.path:", d)
' "$site"
echo "python install check passed (RUNPATH $runpath)"
