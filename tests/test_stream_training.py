"""Training through the streaming data path (``--loader stream``): the same batches as the in-memory
path, results independent of the number of DataLoader workers, exact resume, an ImageFolder read
file by file with RandomResizedCrop, Cutout, and two processes."""

import json
import os

import numpy as np
import proctree
import pytest
from test_harness_e2e import TINY, _final, _run, _run_killed_after_epoch, _torchrun

from mixkit.harness.cli import main


def _train(out, *extra):
    assert main(["train", *TINY, "--epochs", "2", "--seed", "1", "--out", str(out), *extra]) == 0
    return _final(str(out))


KEYS = ("test_error", "nll", "ece", "train_loss", "macro_f1")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mixup", "synermix"])
def test_stream_without_augmentation_equals_memory(tmp_path, method):
    """With no per-sample draws, the stream path feeds the very batches of the in-memory path (the
    same index batches, the same normalised tensors), so the runs are identical."""
    args = ["--method", method, "--augment", "none"]
    mem = _train(tmp_path / "mem", *args)
    for workers in ("0", "2"):
        st = _train(tmp_path / f"stream{workers}", *args, "--loader", "stream", "--workers", workers)
        for key in KEYS:
            assert st[key] == mem[key], (workers, key)


@pytest.mark.slow
def test_stream_augmented_results_do_not_depend_on_workers(tmp_path):
    args = ["--method", "cutmix", "--augment", "crop-flip", "--cutout", "4", "--loader", "stream"]
    a = _train(tmp_path / "w0", *args, "--workers", "0")
    b = _train(tmp_path / "w2", *args, "--workers", "2")
    mem = _train(tmp_path / "mem", "--method", "cutmix", "--augment", "crop-flip")
    for key in KEYS:
        assert a[key] == b[key], key
    assert a["train_loss"] != mem["train_loss"]          # the augmentation did happen (other draws)


@pytest.mark.slow
def test_stream_resume_after_kill_matches_uninterrupted(tmp_path):
    args = ["train", *TINY, "--method", "synermix", "--epochs", "3", "--seed", "4", "--loader", "stream",
            "--workers", "1", "--augment", "crop-flip", "--cutout", "3"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    _run([*args, "--out", whole])
    p = _run_killed_after_epoch(1, [*args, "--out", cut])
    assert p.returncode == -9, p.stderr
    p = _run(["train", "--out", cut, "--resume", "--workers", "2"])     # workers may change on resume
    assert "resuming after epoch 1/3" in p.stderr
    a, b = _final(whole), _final(cut)
    for key in KEYS:
        assert a[key] == b[key], key


def _image_folder(root, n_per_class=6, size=(20, 14)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_per_class), ("test", 3)):
        for c in range(3):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                arr[..., c] = 200                                  # a learnable colour cue
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


@pytest.mark.slow
def test_imagefolder_streamed_with_random_resized_crop(tmp_path, capsys):
    data = _image_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", "--dataset", "imagefolder", "--data-dir", str(data), "--image-size", "16",
            "--model", "small-cnn", "--batch-size", "6", "--epochs", "2", "--threads", "1", "--loader", "stream",
            "--workers", "2", "--augment", "rrc-flip", "--cutout", "4", "--method", "fmix", "--out", str(out)]
    assert main(args) == 0
    final = _final(str(out))
    assert final["n_test"] == 9 and np.isfinite(final["nll"])
    lines = [json.loads(x) for x in open(out / "metrics.jsonl")]
    assert all(r["images_per_s"] > 0 for r in lines)
    assert "stream loader, 2 workers" in capsys.readouterr().err
    # a subset is drawn from the file lists as the in-memory loader draws it
    sub = tmp_path / "sub"
    assert main([*args[:-2], "--train-size", "12", "--test-size", "6", "--out", str(sub)]) == 0
    assert _final(str(sub))["n_test"] == 6


def test_rrc_flip_needs_stream_and_imagefolder(capsys):
    assert main(["train", *TINY, "--augment", "rrc-flip", "--out", "/tmp/never"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixkit train: error: augment: expected") and "rrc-flip needs" in err


@pytest.mark.slow
def test_two_processes_stream(tmp_path):
    out = str(tmp_path / "ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = proctree.run(_torchrun(["train", *TINY, "--method", "manifold", "--epochs", "1", "--device", "cpu",
                                "--loader", "stream", "--workers", "1", "--out", out]), env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    final = _final(out)
    assert final["world_size"] == 2 and final["n_test"] == 120


@pytest.mark.slow
def test_sync_bn_on_cpu_is_a_clear_error(tmp_path):
    out = str(tmp_path / "ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = proctree.run(_torchrun(["train", *TINY, "--epochs", "1", "--device", "cpu", "--sync-bn",
                                "--out", out]), env=env, timeout=300)
    assert p.returncode != 0
    assert "mixkit train: error: sync_bn: expected a CUDA device" in p.stderr
    # torchrun itself reports the failed workers with its own traceback; none comes from mixkit
    assert not [line for line in p.stderr.splitlines() if line.strip().startswith("File") and "mixkit" in line]
