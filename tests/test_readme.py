"""The README's Python tour runs as written (the README stays true)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_block_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_readme_opens_with_the_two_commands():
    head = README.read_text().split("\n")[:8]
    assert any(line.startswith("make demo") for line in head) and any(line.startswith("make test") for line in head)
