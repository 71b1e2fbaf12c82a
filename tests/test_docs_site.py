"""The documentation site (mkdocs.yml: mkdocs-material + mkdocstrings) builds with --strict, and
the API pages carry the docstrings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"

    mixers = (site / "api" / "mixers.html").read_text(encoding="utf-8")
    assert "Zhang et al." in mixers                   # MixUp's docstring
    from mixkit import registry

    for method in registry.methods("input"):
        if method.examples:  # every registered mixer class has its entry on the page
            assert f'id="mixkit.{method.cls.__name__}"' in mixers, method.name
    for name in ("mixkit.MixParams", "mixkit.base.Mixer", "mixkit.registry.Method"):
        assert f'id="{name}"' in mixers, name
    losses = (site / "api" / "losses.html").read_text(encoding="utf-8")
    assert 'id="mixkit.losses.soft_target_cross_entropy"' in losses
    # the home page shows the README's method table; no page shows a reST "::" literally, and
    # every internal link names its .html file (the site also works opened from disk)
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "<table>" in home and "ZetaMixup" in home and "--8&lt;--" not in home
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "Example::" not in text and "contract::" not in text, page
    import re

    links = re.findall(r'href="((?!https?:|#|mailto:)[^"]+)"', (site / "api" / "mixers.html").read_text(encoding="utf-8"))
    pages = [link for link in links if not link.split("#")[0].endswith((".css", ".js", ".png", ".svg", ".ico", ".xml"))]
    assert pages and all(link.split("#")[0].endswith(".html") or link.split("#")[0] == "" for link in pages), pages
