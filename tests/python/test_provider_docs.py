"""The ```python examples of docs/providers-python.md run."""
import os
import pathlib
import re

import pytest

DOC = (pathlib.Path(os.environ.get("TAPE_DOCS_DIR", pathlib.Path(__file__).parents[2] / "docs"))
       / "providers-python.md")
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_doc_has_an_example():
    assert len(BLOCKS) >= 1


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_doc_example_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[i], f"{DOC}:block{i}", "exec"), {})
