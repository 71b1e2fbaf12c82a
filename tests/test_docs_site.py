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

    mixers = (site / "api" / "mixers" / "index.html").read_text(encoding="utf-8")
    assert "Zhang et al." in mixers                   # MixUp's docstring
    from mixkit import registry

    for method in registry.methods("input"):
        if method.examples:  # every registered mixer class has its entry on the page
            assert f'id="mixkit.{method.cls.__name__}"' in mixers, method.name
    for name in ("mixkit.MixParams", "mixkit.base.Mixer", "mixkit.registry.Method"):
        assert f'id="{name}"' in mixers, name
    losses = (site / "api" / "losses" / "index.html").read_text(encoding="utf-8")
    assert 'id="mixkit.losses.soft_target_cross_entropy"' in losses
