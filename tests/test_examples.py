"""The scripts in examples/ run as the docs say."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_accelerate_example_runs():
    pytest.importorskip("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "ACCELERATE_DISABLE_RICH": "1"}
    # examples/ imports mixkit as installed; make the checkout's copy win either way
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "accelerate_mixup.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"final loss: (\d+\.\d+), clean accuracy: (\d\.\d+)", last)
    assert match, proc.stdout
    assert float(match.group(1)) > 0


def test_integrations_page_shows_the_accelerate_example_as_it_is():
    # docs/integrations.md quotes the script (after its docstring) in full; keep the two equal.
    script = (ROOT / "examples" / "accelerate_mixup.py").read_text(encoding="utf-8")
    body = script.split('"""', 2)[2].strip()
    page = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
    blocks = [b.strip() for b in re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M)]
    assert body in blocks, "docs/integrations.md: the accelerate block differs from examples/accelerate_mixup.py"


@pytest.mark.slow
def test_segmentation_example_trains_with_every_mixer():
    """examples/segmentation_classmix.py, cut to 40 steps: each setting (none, CutMix, ClassMix
    with mixed class maps) trains past the all-background answer (mIoU about 0.2)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "segmentation_classmix.py"), "--steps", "40"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = dict(re.findall(r"^(\w+): test mIoU (\d\.\d+)$", proc.stdout, flags=re.M))
    assert set(scores) == {"none", "cutmix", "classmix"}, proc.stdout
    assert all(0.3 < float(v) <= 1.0 for v in scores.values()), scores
