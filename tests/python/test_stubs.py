"""The type stubs and docstrings cover the public API."""
import ast
import inspect
import pathlib
import pydoc

import tapestore

PKG = pathlib.Path(tapestore.__file__).parent


def _stub_names():
    tree = ast.parse((PKG / "__init__.pyi").read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            members = set()
            if isinstance(node, ast.ClassDef):
                for m in node.body:
                    if isinstance(m, ast.FunctionDef):
                        members.add(m.name)
                    elif isinstance(m, ast.AnnAssign):
                        members.add(m.target.id)
            names[node.name] = members
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = set()
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                names[t.id] = set()
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                names[a.asname or a.name] = set()
    return names


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_py_typed_ships():
    assert (PKG / "py.typed").exists()


def test_every_public_name_is_in_the_stub():
    stub = _stub_names()
    public = {n for n in _public(tapestore) if not inspect.ismodule(getattr(tapestore, n))} - {"TimeLike"}
    assert public - set(stub) == set()
    assert set(tapestore.__all__) <= set(stub)


def test_every_public_member_of_every_class_is_in_the_stub():
    stub = _stub_names()
    for name in tapestore.__all__:
        obj = getattr(tapestore, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        own = {n for n in _public(obj) if n in vars(obj) or n in getattr(obj, "__slots__", ())
               or n in getattr(obj, "__dataclass_fields__", {})}
        missing = own - stub[name]
        assert missing == set(), f"{name}: {missing} not in __init__.pyi"


def test_stub_compiles():
    compile((PKG / "__init__.pyi").read_text(), "__init__.pyi", "exec")


def test_docstrings_for_help():
    for name in tapestore.__all__:
        obj = getattr(tapestore, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
        if inspect.isclass(obj):
            for m, v in vars(obj).items():
                if not m.startswith("_") and (inspect.isfunction(v) or isinstance(v, property)):
                    assert v.__doc__, f"{name}.{m} has no docstring"
    text = pydoc.plain(pydoc.render_doc(tapestore.Store))
    assert "query_page" in text and "page_size" in text
