"""examples/detection_synthetic.py (issue 25): its COCO-style mAP against hand-computed cases and
pycocotools (when importable), its report's paired intervals, and a short run end to end."""

import csv
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("torchvision")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "detection_synthetic.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("detection_synthetic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def _pred(boxes, scores, labels):
    return {**_target(boxes, labels), "scores": torch.tensor(scores, dtype=torch.float32)}


def _random_case(n_images=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets, preds = [], []
    for _ in range(n_images):
        n = int(torch.randint(0, 5, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 50
        wh = 4 + torch.rand(n, 2, generator=g) * 20
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, 3, (n,), generator=g)
        targets.append({"boxes": boxes, "labels": labels})
        m = int(torch.randint(0, 8, (1,), generator=g))
        src = torch.randint(0, max(n, 1), (m,), generator=g)
        jitter = torch.randn(m, 4, generator=g) * 2.5
        pb = (boxes[src] if n else torch.rand(m, 4, generator=g) * 40) + jitter
        pb = torch.cat([pb[:, :2], torch.maximum(pb[:, 2:], pb[:, :2] + 0.5)], 1)
        pl = torch.where(torch.rand(m, generator=g) < 0.85, labels[src] if n else 0, torch.randint(0, 3, (m,), generator=g))
        preds.append({"boxes": pb, "labels": pl, "scores": torch.rand(m, generator=g)})
    return preds, targets


def test_perfect_predictions_score_one(ex):
    preds, targets = _random_case()
    perfect = [{**t, "scores": torch.linspace(1, 0.5, len(t["labels"]))} for t in targets]
    assert ex.coco_map(perfect, targets) == pytest.approx((1.0, 1.0))


def test_no_predictions_score_zero(ex):
    _, targets = _random_case()
    empty = [_pred([], [], []) for _ in targets]
    assert ex.coco_map(empty, targets) == (0.0, 0.0)


def test_a_known_small_case(ex):
    # true positive (score .9), false positive (.8), true positive (.7): precision 1 up to recall .5,
    # then 2/3; 51 of the 101 recall points at 1, 50 at 2/3, at every IoU threshold
    targets = [_target([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])]
    preds = [_pred([[0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [0, 0, 0])]
    expected = (51 + 50 * 2 / 3) / 101
    assert ex.coco_map(preds, targets) == pytest.approx((expected, expected))


def test_iou_between_the_thresholds_and_the_class_average(ex):
    # IoU 0.72 counts at .50, .55, .60, .65, .70: half of the ten thresholds; a second class
    # with no detection has AP 0, and the two classes are averaged
    targets = [_target([[0, 0, 10, 10]], [0]), _target([[5, 5, 9, 9]], [1])]
    preds = [_pred([[0, 0, 10, 7.2]], [0.5], [0]), _pred([], [], [])]
    assert ex.coco_map(preds, targets) == pytest.approx((0.25, 0.5))
    assert ex.coco_map(preds[:1], targets[:1]) == pytest.approx((0.5, 1.0))


def test_equal_to_pycocotools(ex):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for seed in range(3):
        preds, targets = _random_case(seed=seed)
        gt = COCO()
        anns = []
        for i, t in enumerate(targets):
            for b, c in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "iscrowd": 0,
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])})
        gt.dataset = {"images": [{"id": i} for i in range(len(targets))],
                      "categories": [{"id": c} for c in (1, 2, 3)], "annotations": anns}
        gt.createIndex()
        res = [{"image_id": i, "category_id": int(c) + 1, "score": float(s),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
               for i, p in enumerate(preds) for b, c, s in zip(p["boxes"], p["labels"], p["scores"], strict=True)]
        evaluator = COCOeval(gt, gt.loadRes(res), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        assert ex.coco_map(preds, targets) == pytest.approx((evaluator.stats[0], evaluator.stats[1]), abs=1e-9)


def test_report_calls_an_interval_containing_zero_not_shown(ex):
    args = SimpleNamespace(epochs=1, train_size=8, test_size=4, p=0.5)
    rows = [{"method": m, "seed": s, "map": v, "map50": v, "seconds": 1.0}
            for m, vals in (("erm", (0.30, 0.32, 0.31)), ("mosaic", (0.35, 0.36, 0.37)), ("mixup", (0.29, 0.34, 0.30)))
            for s, v in enumerate(vals)]
    lines = {line.split(" | ")[0].strip("| "): line for line in ex.summarise(rows, args).splitlines()}
    assert lines["mosaic"].endswith("| better |")
    assert lines["mixup"].endswith("| not shown |")
    assert ex.t_quantile(2) == pytest.approx(4.303)


def test_loss_change_is_the_relative_change_over_the_last_tenth(ex):
    assert math.isnan(ex.loss_change([1.0]))
    assert ex.loss_change([2.0, 1.0]) == pytest.approx(1.0)           # at least the last two epochs
    losses = [3.0] * 15 + [1.1, 1.0, 1.0, 1.0, 1.0]                   # 20 epochs: k = 2
    assert ex.loss_change(losses) == pytest.approx(0.0)
    assert ex.loss_change(losses[:-1] + [0.8]) == pytest.approx(0.25)


TINY = ["--epochs", "1", "--train-size", "64", "--test-size", "24", "--batch-size", "16", "--max-steps", "3"]


def test_a_results_folder_made_with_other_settings_is_refused(ex, tmp_path, capsys):
    out = tmp_path / "det"
    assert ex.main([*TINY, "--seeds", "1", "--methods", "erm", "--out", str(out)]) == 0
    before = (out / "results.csv").read_text()
    with pytest.raises(SystemExit) as err:
        ex.main([*TINY[:-1], "4", "--seeds", "1", "--methods", "erm", "--out", str(out)])
    assert "other settings (max_steps 3 there, 4 now)" in str(err.value)
    assert (out / "results.csv").read_text() == before                    # nothing overwritten
    with pytest.raises(SystemExit):
        ex.main([*TINY, "--jobs", "0", "--out", str(tmp_path / "other")])
    assert "--jobs: expected a whole number >= 1, got 0" in capsys.readouterr().err


def _run(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(SCRIPT), *TINY, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _rows(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_example_writes_its_results_resumes_and_gives_the_same_runs_with_jobs(tmp_path):
    out = tmp_path / "det"
    _run(["--seeds", "1", "--out", str(out)])
    rows = _rows(out)
    assert list(rows[0]) == ["method", "seed", "map", "map50", "seconds", "train_loss", "loss_change"]
    assert [r["method"] for r in rows] == ["erm", "mosaic", "mixup", "cutmix", "copypaste"]
    assert all(math.isfinite(float(r["map"])) and 0 <= float(r["map"]) <= float(r["map50"]) <= 1 for r in rows)
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    md = (out / "results.md").read_text()
    assert all(f"| {m} |" in md for m in ("erm", "mosaic", "mixup", "cutmix", "copypaste"))
    assert "not shown" in md
    assert (out / "map.png").stat().st_size > 0
    # --report-only trains nothing and rewrites the report from the runs on disk
    (out / "map.png").unlink()
    assert "5 run(s) already in" in _run(["--seeds", "1", "--report-only", "--out", str(out)])
    assert _rows(out) == rows and (out / "map.png").stat().st_size > 0
    # A second seed in two worker processes: the first seed's runs are kept, not retrained.
    log = _run(["--seeds", "2", "--jobs", "2", "--out", str(out)])
    assert "5 run(s) already in" in log and "5 to go" in log
    both = _rows(out)
    assert both[:5] == rows
    assert [(r["seed"], r["method"]) for r in both[5:]] == [("1", m) for m in ("erm", "mosaic", "mixup", "cutmix", "copypaste")]
    # The same runs one at a time in one process: the same models (the times differ).
    serial = tmp_path / "serial"
    _run(["--seeds", "2", "--methods", "erm,mixup,mosaic", "--out", str(serial)])
    key = lambda r: (r["method"], r["seed"], r["map"], r["map50"], r["train_loss"])  # noqa: E731
    assert sorted(map(key, _rows(serial))) == sorted(key(r) for r in both if r["method"] in ("erm", "mixup", "mosaic"))
