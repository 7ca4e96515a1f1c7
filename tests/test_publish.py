"""flatlib.stages.publish: the executed notebooks as small HTML pages with the same bytes every time."""
import base64
import io
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from flatlib import layout
from flatlib.stages import publish
from tests.workspace import ROOT


def png(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def executed_notebook(path, title: str) -> None:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("report.plot_fid_vs_paper(workspace)", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="19 claims: 4 reproduced\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png(1600, 400)).decode(),
                                                                 "text/plain": "Table 1 per row."},
                                           metadata={"image/png": {"name": "claims_forest", "alt": "Dot plots per row",
                                                                   "caption": "Table 1 per row."}})]
    code.metadata["papermill"] = {"start_time": "2026-11-27T03:00:00", "duration": 1.5}
    default = nbformat.v4.new_code_cell('workspace = "default"')
    default.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell('workspace = ".."')
    injected.metadata["tags"] = ["injected-parameters"]  # papermill's (nbformat: random ids, as papermill's)
    board = nbformat.v4.new_code_cell("report.show_scoreboard(workspace)", execution_count=2)
    board.metadata["tags"] = [publish.SCOREBOARD]
    board.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": '<div class="scoreboard"><p class="answer">Partly: 4 of 15 reproduce.</p></div>',
        "text/markdown": "**Partly: 4 of 15 reproduce.**", "text/plain": "Partly: 4 of 15 reproduce."})]
    note = nbformat.v4.new_markdown_cell("**Statistics.** Shared by every page.")
    note.metadata["tags"] = [publish.SHARED_NOTE]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\nText."), default, injected, board, code, note]
    nb.metadata["papermill"] = {"start_time": "2026-11-27T03:00:00"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_pages_index_and_figures_are_small_and_deterministic(tmp_path):
    executed_notebook(tmp_path / layout.report_notebook("summary"), "Summary: which claims reproduce")
    executed_notebook(tmp_path / layout.report_notebook("exposure"), "Exposure bias")
    (tmp_path / layout.FIGURES).mkdir(parents=True)
    (tmp_path / layout.FIGURES / "fid_vs_paper.png").write_bytes(png(1600, 400))
    (tmp_path / layout.FIGURES / "samples_T50.png").write_bytes(png(300, 300))  # a T' of sample.respacings
    (tmp_path / layout.FIGURES / "samples_T7.png").write_bytes(png(300, 300))  # not one: not published
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace(
        "respacings: [20, 100]", "respacings: [20, 50]"))
    written = publish.publish(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "docs/summary.html", "docs/exposure.html", "docs/index.html", "docs/style.css", "docs/figures/fid_vs_paper.png",
        "docs/figures/samples_T50.png"}
    first = {p: p.read_bytes() for p in written}
    executed_notebook(tmp_path / layout.report_notebook("summary"), "Summary: which claims reproduce")  # new ids
    publish.publish(tmp_path)
    assert {p: p.read_bytes() for p in written} == first  # same bytes for a re-executed notebook
    page = (tmp_path / "docs/summary.html").read_text()
    assert "<title>Summary: which claims reproduce</title>" in page and "19 claims: 4 reproduced" in page
    assert '<link rel="stylesheet" href="style.css">' in page and ".highlight" in (tmp_path / "docs/style.css").read_text()
    assert '<a href="exposure.html">Exposure bias</a>' in page and '<a href="index.html">Overview</a>' in page
    assert str(tmp_path) not in page and "2026-11-27" not in page  # no paths, no papermill times
    embedded = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    with Image.open(io.BytesIO(embedded)) as image:
        assert image.width == publish.MAX_WIDTH and image.mode == "P"  # downscaled, 256-colour palette
    with Image.open(tmp_path / "docs/figures/fid_vs_paper.png") as image:
        assert image.size == (publish.MAX_WIDTH, round(400 * publish.MAX_WIDTH / 1600))
    index = (tmp_path / "docs/index.html").read_text()
    assert 'href="summary.html"' in index
    # the scoreboard first on the index; the shared note once, there and on no page; one parameters cell; code folded
    assert index.index('<p class="answer">Partly: 4 of 15 reproduce.</p>') < index.index('<li><a href="summary.html">')
    assert index.count("Shared by every page.") == 1 and "Shared by every page." not in page
    assert 'workspace = "default"' not in page and page.count('<details class="code">') == 3
    assert '<figcaption>Figure 1. Table 1 per row.</figcaption>' in page and 'alt="Dot plots per row"' in page
    assert index.count("<figcaption>Figure 1. Table 1 per row.</figcaption>") == 1  # the forest plot's, from its output
    assert "¶" not in page
    css = (tmp_path / "docs/style.css").read_text()
    assert ".highlight .o " in css and ".highlight .il " not in css  # pygments rules of the tokens used only


def test_publish_writes_the_scoreboard_into_the_readme_between_its_markers(tmp_path):
    executed_notebook(tmp_path / layout.report_notebook("summary"), "Summary")
    start, end = publish.MARKERS
    (tmp_path / "README.md").write_text(f"# Title\n\n{start}\nold\n{end}\n\nRest.\n")
    publish.publish(tmp_path)
    assert (tmp_path / "README.md").read_text() == (
        f"# Title\n\n{start}\n**Partly: 4 of 15 reproduce.**\n\n![Dot plots per row](docs/figures/claims_forest.png)"
        f"\n\n*Table 1 per row.*\n{end}\n\nRest.\n")


def test_the_readme_has_one_scoreboard_block_near_its_top():
    readme = (ROOT / "README.md").read_text()
    start, end = publish.MARKERS
    assert readme.count(start) == readme.count(end) == 1 and readme.index(start) < readme.index(end) < 3000


def test_nothing_to_publish_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `dvc repro` first"):
        publish.publish(tmp_path)
