"""The README's API tour runs as written."""
import re
from pathlib import Path


def test_readme_api_tour_runs():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["x"].shape == (4, 1, 16, 16)
    assert namespace["x"].abs().max() <= 1  # clipped x0 at the last step
