"""The committed report (docs/) in headless Chromium: every page fits a laptop (1400 px) and a phone (390 px)
window, no wider than the window (tables scroll inside their own box, the verdict tables stack as cards), and every
rule of the stylesheet applies to some page (tests/pages.py). tests/test_pipeline.py checks the pages the smoke
pipeline publishes the same way (check_pages)."""
import pytest

from flatlib import layout
from tests.pages import CHROMIUM, WIDTHS, probe
from tests.workspace import ROOT

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed and could not be (`make test` installs Debian's chromium "
                             "package with apt-get where it runs as root or with sudo)")
pytestmark = needs_chromium
PAGES = sorted((ROOT / layout.DOCS).glob("*.html"))


def probe_all(pages) -> dict:
    return {(page.name, width): probe(page, width) for page in pages for width in WIDTHS}


def too_wide(probes: dict) -> list[str]:
    """The pages wider than their window, with a few of the elements that reach past it."""
    return [f"{page} is {r['width']} px wide at {width} px: {r['wide']}" for (page, width), r in probes.items()
            if r["window"] != width or r["width"] > width]


def unmatched(probes: dict) -> list[str]:
    """The stylesheet's selectors that match no element of any page."""
    matched = {}
    for result in probes.values():
        for selector, hit in result["matched"].items():
            matched[selector] = matched.get(selector, False) or hit
    return [s for s, hit in matched.items() if not hit] if matched else ["(no selector read)"]


@pytest.fixture(scope="module")
def probes():
    return probe_all(PAGES)


def test_every_page_is_no_wider_than_the_window(probes):
    assert PAGES and not too_wide(probes)


def test_every_css_selector_matches_an_element_of_some_page(probes):
    assert not unmatched(probes)
