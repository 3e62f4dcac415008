"""docs/binding.md shows the samples' YAML verbatim: a worked example cannot drift from a file that runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_worked_examples_match_their_samples():
    text = (ROOT / "docs" / "binding.md").read_text()
    blocks = re.findall(r"<!-- sample: (\S+) -->\n```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 9
    for path, block in blocks:
        lines = (ROOT / path).read_text().splitlines()
        body = "\n".join(lines[1:] if lines[0].startswith("#") else lines).strip()
        assert block.strip() == body, path


def test_the_readme_python_api_example_runs_and_prints_what_it_says(tmp_path, capsys):
    import runpy

    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S).group(1)
    expected = [line[2:] for line in code.splitlines() if line.startswith("# False")]
    (tmp_path / "example.py").write_text(code)  # as a user would save and run it
    runpy.run_path(str(tmp_path / "example.py"))
    assert capsys.readouterr().out.strip() == expected[0]


def test_import_backcheck_is_light():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, backcheck; print(sorted(m for m in sys.modules if "
                          "m.split('.')[0] in ('numpy', 'rich', 'yaml', 'click')))"], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout
