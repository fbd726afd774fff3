"""Render a report page in headless Chromium and read back what the browser decoded.

The shipped page has no script; :func:`probe_report` injects one that records, after load,
each image's decoded size, the number of model rows in the SW_r,k table, the text the browser
shows for the sample figures (caption, row names), the table's model names and reference rows,
and the curve images, and returns it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {w: i.naturalWidth, h: i.naturalHeight, complete: i.complete};
  });
  var rows = document.querySelectorAll('#sw-table tbody tr').length;
  var texts = function (sel, root) {
    return Array.prototype.map.call((root || document).querySelectorAll(sel), function (e) {
      return e.textContent;
    });
  };
  var cells = function (sel) {
    return Array.prototype.map.call(document.querySelectorAll(sel), function (r) {
      return texts('td', r);
    });
  };
  var figures = Array.prototype.map.call(document.querySelectorAll('figure'), function (f) {
    return {caption: texts('figcaption', f)[0], rows: texts('ol.rows li', f)};
  });
  var curves = Array.prototype.map.call(document.querySelectorAll('img[alt^="training curves"]'),
    function (i) { return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight}; });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({imgs: imgs, rows: rows, figures: figures, curves: curves,
    models: cells('#sw-table tbody tr').map(function (r) { return r[0]; }),
    refs: cells('#sw-table tfoot tr.reference')});
  document.body.appendChild(pre);
});
</script>"""


def probe_report(page: Path, workdir: Path) -> dict[str, Any]:
    """``{"imgs": [{"w", "h", "complete"}, ...], "rows": int, "figures": [{"caption", "rows"}],
    "models": [str], "refs": [[cell, ...]], "curves": [{"alt", "w", "h"}]}`` as Chromium
    rendered ``page``.

    Skips the calling test when no Chromium is installed (CI installs it, see ``.ci/run``).
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    probed = workdir / "probed.html"
    probed.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={workdir / 'chromium-profile'}", "--virtual-time-budget=5000",
        "--dump-dom", probed.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert match, f"probe missing from the rendered DOM: {dom[:500]!r}"
    return json.loads(match.group(1).replace("&quot;", '"'))
