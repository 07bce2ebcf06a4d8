"""The ```python examples of docs/python.md run."""
import os
import pathlib
import re

import pytest

DOC = pathlib.Path(os.environ.get("TAPE_DOCS_DIR", pathlib.Path(__file__).parents[2] / "docs")) / "python.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_doc_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_doc_example_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[i], f"{DOC}:block{i}", "exec"), {})
