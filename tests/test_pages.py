"""The committed report (docs/) in headless Chromium: every page fits a laptop (1400 px) and a phone (390 px)
window, no wider than the window (tables scroll inside their own box, the verdict tables stack as cards), and every
rule of the stylesheet applies to some page (tests/pages.py)."""
import pytest

from flatlib import layout
from tests.pages import CHROMIUM, WIDTHS, probe
from tests.workspace import ROOT

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed and could not be (`make test` installs Debian's chromium "
                             "package with apt-get where it runs as root or with sudo)")
PAGES = sorted((ROOT / layout.DOCS).glob("*.html"))


@pytest.fixture(scope="module")
def probes():
    return {(page.name, width): probe(page, width) for page in PAGES for width in WIDTHS}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_page_is_no_wider_than_the_window(probes, page, width):
    result = probes[page, width]
    assert result["window"] == width
    assert result["width"] <= width, f"{page} is {result['width']} px wide at {width} px: {result['wide']}"


def test_every_css_selector_matches_an_element_of_some_page(probes):
    matched = {}
    for result in probes.values():
        for selector, hit in result["matched"].items():
            matched[selector] = matched.get(selector, False) or hit
    assert matched and not [s for s, hit in matched.items() if not hit]
