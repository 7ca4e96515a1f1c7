"""The published pages in headless Chromium (Debian's ``chromium`` package; the Makefile's test target installs it
where it can): every page's document width at a window width, and which of the stylesheet's selectors match an
element of the page. A copy of each page gets a probe script that measures after the page has loaded and writes
its result into the DOM, which ``chromium --dump-dom`` prints."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

#: where Chromium is missing and cannot be installed (no root, no apt) the page tests skip, saying so
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--allow-file-access-from-files", "--virtual-time-budget=5000"]
WIDTHS = (1400, 390)
#: the page in an iframe of the window's width (a headless window is at least 500 px wide; an iframe is a viewport of
#: any width, media queries included); the wrapper measures the framed page once both have loaded
WRAPPER = """<!DOCTYPE html><html><body style="margin: 0">
<iframe id="page" src="{page}" style="border: 0; width: {width}px; height: {height}px; display: block"></iframe>
<script>
window.addEventListener("load", () => {{
  const win = document.getElementById("page").contentWindow, doc = win.document;
  const selectors = [];
  const walk = (rules) => {{ for (const rule of rules) {{
    if (rule.selectorText) selectors.push(...rule.selectorText.split(","));
    else if (rule.cssRules) walk(rule.cssRules);
  }} }};
  for (const sheet of doc.styleSheets) walk(sheet.cssRules);
  const matched = {{}};
  for (const selector of selectors) {{
    const bare = selector.trim().replace(/::?(before|after)\\b/g, "");
    matched[selector.trim()] = doc.querySelector(bare) !== null;
  }}
  const wide = [...doc.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > win.innerWidth + 1)
    .slice(0, 5).map((e) => e.tagName + "." + e.className);
  const probe = document.createElement("script");
  probe.type = "application/json";
  probe.id = "probe";
  probe.textContent = JSON.stringify({{width: doc.documentElement.scrollWidth, window: win.innerWidth,
                                       matched: matched, wide: wide}});
  document.body.appendChild(probe);
}});
</script></body></html>"""


def _run(page: Path, width: int, height: int, *args: str) -> subprocess.CompletedProcess:
    """Chromium on a wrapper page framing ``page`` (``width`` x ``height`` px), in a fresh profile."""
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "wrapper.html"
        wrapper.write_text(WRAPPER.format(page=page.resolve().as_uri(), width=width, height=height))
        profile = tempfile.mkdtemp(prefix="flatlib-chromium-")
        try:
            return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                   f"--window-size={max(width, 500)},{height}", *args, wrapper.as_uri()],
                                  capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def probe(page: Path, width: int) -> dict:
    """{width: the document's scroll width, window: the viewport's width, matched: {selector: whether it matches an
    element}, wide: a few elements that reach past the viewport} of ``page`` in a viewport ``width`` px wide."""
    out = _run(page, width, 900, "--dump-dom")
    found = re.search(r'<script type="application/json" id="probe">(.*?)</script>', out.stdout, re.S)
    if not found:
        raise RuntimeError(f"no probe result from Chromium for {page} (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(found.group(1))


def screenshot(page: Path, width: int, out: Path, height: int = 3000) -> Path:
    """A PNG of the first ``height`` pixels of ``page`` in a viewport ``width`` px wide (for looking at the pages;
    a window narrower than 500 px leaves white space on the right)."""
    _run(page, width, height, f"--screenshot={out.resolve()}")
    return out
