"""Harness building blocks against slow references: augmentation, metrics, schedules, config,
atomic checkpoints."""

import math
import os
import re

import pytest
import torch

from mixkit.harness.data.augment import augment_batch, random_crop, random_flip
from mixkit.harness.train.checkpoint import (
    CheckpointError,
    atomic_write_json,
    load_checkpoint,
    save_checkpoint,
)
from mixkit.harness.train.config import TrainConfig, config_from_dict, resolve_config
from mixkit.harness.train.loop import lr_at
from mixkit.harness.train.metrics import MetricState, expected_calibration_error

# --- augmentation -------------------------------------------------------------------------------


def test_random_crop_matches_per_sample_reference():
    x = torch.randn(6, 3, 7, 5)
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 5, (6,), generator=g)
    dx = torch.randint(0, 5, (6,), generator=g)
    for i in range(6):
        padded = torch.zeros(3, 11, 9)
        padded[:, 2:9, 2:7] = x[i]
        assert torch.equal(out[i], padded[:, dy[i]:dy[i] + 7, dx[i]:dx[i] + 5])


def test_random_shift_1d_matches_reference():
    x = torch.randn(5, 2, 9)
    out = random_crop(x, 3, torch.Generator().manual_seed(1))
    d = torch.randint(0, 7, (5,), generator=torch.Generator().manual_seed(1))
    for i in range(5):
        padded = torch.zeros(2, 15)
        padded[:, 3:12] = x[i]
        assert torch.equal(out[i], padded[:, d[i]:d[i] + 9])


def test_random_flip_matches_reference():
    x = torch.randn(40, 1, 3, 4)
    out = random_flip(x, torch.Generator().manual_seed(2))
    flips = torch.rand(40, generator=torch.Generator().manual_seed(2)) < 0.5
    assert 5 < int(flips.sum()) < 35
    for i in range(40):
        assert torch.equal(out[i], x[i].flip(-1) if flips[i] else x[i])


def test_augment_none_and_signals_not_flipped():
    x = torch.randn(4, 1, 10)
    assert augment_batch(x, "none", 4, None) is x
    assert torch.equal(augment_batch(x, "flip", 4, torch.Generator()), x)
    with pytest.raises(ValueError, match="expected a \\(B, C, H, W\\) or \\(B, C, L\\) batch"):
        random_crop(torch.randn(2, 3), 1)


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_match_sklearn_and_split_sums():
    from sklearn.metrics import f1_score, log_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 5, generator=g) * 2
    labels = torch.randint(0, 5, (300,), generator=g)
    labels[:50] = logits[:50].argmax(1)
    whole = MetricState(5)
    whole.update(logits, labels)
    m = whole.finish()
    pred = logits.argmax(1).numpy()
    assert m["test_error"] == pytest.approx(float((pred != labels.numpy()).mean()))
    assert m["micro_f1"] == pytest.approx(f1_score(labels.numpy(), pred, average="micro"))
    assert m["macro_f1"] == pytest.approx(f1_score(labels.numpy(), pred, average="macro"))
    probs = torch.softmax(logits.double(), 1)
    assert m["nll"] == pytest.approx(log_loss(labels.numpy(), probs.numpy(), labels=list(range(5))), rel=1e-6)
    assert m["ece"] == pytest.approx(expected_calibration_error(probs, labels), abs=1e-6)  # float32 softmax
    parts = [MetricState(5), MetricState(5)]
    parts[0].update(logits[:120], labels[:120])
    parts[1].update(logits[120:], labels[120:])
    parts[0].buffer += parts[1].buffer
    assert parts[0].finish() == pytest.approx(m)


def test_metrics_empty_is_an_error():
    with pytest.raises(ValueError, match="at least one evaluated sample"):
        MetricState(3).finish()


# --- learning-rate schedules ---------------------------------------------------------------------


def test_schedules():
    c = TrainConfig(lr=0.1, epochs=200, schedule="multistep", milestones=[100, 150], lr_decay=0.1)
    assert [lr_at(c, e) for e in (0, 99.9, 100, 149.9, 150, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = TrainConfig(lr=0.1, epochs=120, schedule="step", step_size=10, lr_decay=0.5)
    assert lr_at(c, 25) == pytest.approx(0.1 * 0.25)
    c = TrainConfig(lr=0.2, epochs=10, schedule="cosine")
    assert lr_at(c, 0) == pytest.approx(0.2) and lr_at(c, 5) == pytest.approx(0.1) and lr_at(c, 10) == 0
    c = TrainConfig(lr=0.2, epochs=10, schedule="onecycle")
    assert lr_at(c, 3) == pytest.approx(0.2) and lr_at(c, 0) == pytest.approx(0.2 / 25)
    assert lr_at(c, 10) == pytest.approx(0.2 / 1e4)
    c = TrainConfig(lr=0.2, epochs=10, schedule="constant", warmup_epochs=2)
    assert lr_at(c, 1) == pytest.approx(0.1) and lr_at(c, 5) == 0.2


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="mixupp"), "method: expected one of erm, mixup"),
    (dict(epochs=0), "epochs: expected an integer >= 1, got 0"),
    (dict(lr=-1.0), "lr: expected a number > 0"),
    (dict(schedule="linear"), "schedule: expected one of"),
    (dict(train_size=0), "train_size: expected an integer >= 1 or None"),
    (dict(syner_beta=1.5), "syner_beta: expected None or a number in \\[0, 1\\]"),
    (dict(milestones=[0]), "milestones: expected a list of integers >= 1"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_config_precedence_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nlr: 0.3\n")
    cfg = resolve_config(preset="quick", yaml_path=str(path), overrides={"lr": 0.01})
    assert (cfg.dataset, cfg.epochs, cfg.lr) == ("fashion-mnist", 7, 0.01)
    with pytest.raises(ValueError, match="unknown keys \\['epoch'\\]"):
        config_from_dict({"epoch": 3})
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a mapping of fields"):
        resolve_config(yaml_path=str(path))
    with pytest.raises(ValueError, match="preset: expected one of"):
        resolve_config(preset="nope")


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_roundtrip_weights_only_and_atomic(tmp_path):
    path = str(tmp_path / "ck.pt")
    state = {"model": {"w": torch.arange(4.0)}, "generators": [torch.Generator().get_state()], "epoch": 2,
             "history": [{"epoch": 1, "test_error": 0.5}]}
    save_checkpoint(path, state)
    back = torch.load(path, weights_only=True)
    assert torch.equal(back["model"]["w"], torch.arange(4.0)) and back["epoch"] == 2
    assert load_checkpoint(path)["history"][0]["test_error"] == 0.5
    atomic_write_json(str(tmp_path / "f.json"), {"a": 1})
    assert sorted(os.listdir(tmp_path)) == ["ck.pt", "f.json"]      # no temporary file left


def test_corrupt_and_truncated_checkpoints(tmp_path):
    path = str(tmp_path / "ck.pt")
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.randn(1000)}})
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable .*damaged"):
        load_checkpoint(path)
    open(path, "wb").write(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="expected a mixkit checkpoint of version 1, got None"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    from mixkit.harness.files import atomic_write, atomic_write_text

    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "old")  # parents are created
    assert path.read_text() == "old"

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old" and os.listdir(path.parent) == ["a.txt"]


# --- argument checks ----------------------------------------------------------------------------


def test_positive_int_wording_and_types():
    import numpy as np

    from mixkit.harness.checks import positive_int

    assert positive_int("n", 3) == 3 and positive_int("n", np.int64(2)) == 2
    for bad in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ValueError, match=rf"^n: expected an integer >= 1, got {re.escape(repr(bad))}$"):
            positive_int("n", bad)


def test_paired_difference_interval():
    from mixkit.harness.train.compare import paired_difference

    d = paired_difference({0: 0.10, 1: 0.12, 2: 0.11}, {0: 0.12, 1: 0.13, 2: 0.14})
    diffs = [-0.02, -0.01, -0.03]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    assert d["n"] == 3 and d["mean"] == pytest.approx(mean)
    assert d["high"] - mean == pytest.approx(4.302652729 * sd / math.sqrt(3), rel=1e-6)
    assert paired_difference({0: 0.1}, {1: 0.2})["n"] == 0


def test_paired_interval_uses_t_quantiles_at_every_df():
    from mixkit.harness.train.compare import paired_difference

    # 11 seeds (df = 10): the half-width is t(0.975, 10) = 2.228 standard errors, not 1.96
    a = {s: 0.1 + 0.01 * (s % 3) for s in range(11)}
    b = {s: 0.1 for s in range(11)}
    diffs = [a[s] - b[s] for s in range(11)]
    mean = sum(diffs) / 11
    se = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 10) / math.sqrt(11)
    d = paired_difference(a, b)
    assert (d["high"] - d["mean"]) / se == pytest.approx(2.228139, rel=1e-6)
    assert (d["mean"] - d["low"]) / se == pytest.approx(2.228139, rel=1e-6)


def test_report_cohesion_table_from_runs():
    from mixkit.harness.train.compare import aggregate, markdown_table

    def run(method, seed, err, within, between):
        return {"method": method, "seed": seed, "curve": [],
                "final": {"test_error": err, "ece": 0.05, "nll": 0.4, "scatter_within": within,
                          "scatter_between": between, "scatter_ratio": between / within}}

    runs = [run("erm", 0, 0.20, 4.0, 8.0), run("erm", 1, 0.22, 4.0, 12.0),
            run("synermix", 0, 0.18, 2.0, 8.0), run("synermix", 1, 0.19, 2.0, 10.0)]
    summary = aggregate(runs, ["erm", "synermix"])
    assert summary["synermix"]["scatter_within"] == (2.0, 0.0)
    assert summary["synermix"]["ratio_by_seed"] == {0: 4.0, 1: 5.0}
    md = markdown_table(summary, ["erm", "synermix"], [("synermix", "erm")])
    # ratios: erm 2, 3; synermix 4, 5 -> paired differences 2, 2 -> +2.00 with a zero-width interval
    assert "| synermix | 2.00 ± 0.00 | 9.00 ± 1.41 | 4.50 ± 0.71 | +2.00 [+2.00, +2.00] | 5.00 ± 0.00 |" in md
    assert "| synermix − erm | -2.50 [" in md        # test error, percentage points


def test_reading_line_states_the_best_method_its_interval_and_what_next():
    from mixkit.harness.train.compare import reading

    def row(errors, nll):
        n = len(errors)
        mean = sum(errors.values()) / n
        return {"n": n, "test_error": (mean, 0.0), "nll": (nll, 0.0), "by_seed": errors}

    summary = {"erm": row({0: 0.20, 1: 0.21}, 0.60), "mixup": row({0: 0.18, 1: 0.19}, 0.55),
               "cutmix": row({0: 0.19, 1: 0.22}, 0.65)}
    line = reading(summary, ["erm", "mixup", "cutmix"], "runs/q")
    assert line.startswith("Reading: mixup has the lowest test error (18.50 %): mixup -2.00 pp vs ERM, 95 % CI [")
    assert "shown (mixup's error is lower than ERM's; the interval excludes 0)" in line
    assert "not shown" not in line and "1 of 2 mixing methods have a lower test NLL" in line
    assert "--preset fmnist-cpu" in line and "runs/q/error_bars.png" in line
    one = {"erm": row({0: 0.20}, 0.6), "mixup": row({0: 0.25}, 0.7)}
    assert "on one seed: not shown" in reading(one, ["erm", "mixup"], "o")
    assert reading({"mixup": row({0: 0.2}, 0.6)}, ["mixup"], "o").startswith("Reading: see o/results.md")
    wide = {"erm": row({0: 0.20, 1: 0.21}, 0.6), "mixup": row({0: 0.18, 1: 0.205}, 0.5)}
    assert "not shown (the interval contains 0" in reading(wide, ["erm", "mixup"], "o")


def test_reading_line_names_erm_when_erm_has_the_lowest_error():
    from mixkit.harness.train.compare import reading

    def row(errors):
        return {"n": len(errors), "test_error": (sum(errors.values()) / len(errors), 0.0), "by_seed": errors}

    # the case: ERM 80.00 %, MixUp 80.44 % -> ERM is named, MixUp's deficit is not shown
    summary = {"erm": row({0: 0.795, 1: 0.805}), "mixup": row({0: 0.7944, 1: 0.8144}),
               "cutmix": row({0: 0.80, 1: 0.83})}
    line = reading(summary, ["erm", "mixup", "cutmix"], "o")
    assert line.startswith("Reading: ERM has the lowest test error (80.00 %); the best mixing method: "
                           "mixup +0.44 pp vs ERM")
    assert "mixup has the lowest" not in line and "not shown (the interval contains 0" in line
    # ERM ahead on every seed by the same margin: the interval excludes 0 on the other side
    clear = {"erm": row({0: 0.20, 1: 0.22}), "mixup": row({0: 0.25, 1: 0.27})}
    line = reading(clear, ["erm", "mixup"], "o")
    assert line.startswith("Reading: ERM has the lowest test error (21.00 %)")
    assert "shown (mixup's error is higher than ERM's; the interval excludes 0)" in line


def test_reading_line_on_nll_calls_the_nll_and_only_reports_the_error():
    from mixkit.harness.train.compare import reading

    def row(errors, nlls):
        mean = sum(errors.values()) / len(errors)
        return {"n": len(errors), "test_error": (mean, 0.0), "by_seed": errors,
                "nll": (sum(nlls.values()) / len(nlls), 0.0), "nll_by_seed": nlls}

    summary = {"erm": row({0: 0.20, 1: 0.21, 2: 0.19}, {0: 0.60, 1: 0.62, 2: 0.61}),
               "mixup": row({0: 0.21, 1: 0.20, 2: 0.20}, {0: 0.55, 1: 0.56, 2: 0.56}),
               "cutmix": row({0: 0.19, 1: 0.22, 2: 0.18}, {0: 0.52, 1: 0.53, 2: 0.525})}
    line = reading(summary, ["erm", "mixup", "cutmix"], "o", claim="nll")
    assert line.startswith("Reading: on test NLL (what this job is sized to call): cutmix -0.085 vs ERM, "
                           "95 % CI [")
    assert "shown (cutmix's test NLL is lower than ERM's; the interval excludes 0)" in line
    assert "Test error, reported and not called here: cutmix -0.33 pp vs ERM" in line
    assert "whether mixing lowers the test error" in line and "--preset fmnist-cpu" in line
    # NLL differences that straddle 0 are not shown
    summary["cutmix"]["nll_by_seed"] = {0: 0.70, 1: 0.50, 2: 0.61}
    summary["cutmix"]["nll"] = (0.603, 0.0)
    summary["mixup"]["nll"] = (0.9, 0.0)
    assert "not shown (the interval contains 0" in reading(summary, ["erm", "mixup", "cutmix"], "o", claim="nll")


# --- provenance ---------------------------------------------------------------------------------


def test_git_commit_names_the_checkout_and_marks_uncommitted_changes(tmp_path):
    import shutil
    import subprocess

    from mixkit.harness.provenance import git_commit
    assert git_commit(str(tmp_path)) is None                     # not a work tree
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "f"], ["commit", "-qm", "x"]):
        if cmd[0] == "add":
            (tmp_path / "f").write_text("a")
        subprocess.run(["git", "-C", str(tmp_path), *cmd], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit(str(tmp_path)) == head
    (tmp_path / "f").write_text("b")
    assert git_commit(str(tmp_path)) == head + "+dirty"


def test_report_provenance_spans_the_runs_and_says_what_is_missing():
    from mixkit.harness.train.compare import provenance_lines
    runs = [{"final": {"provenance": {"mixkit": "0.1.0", "commit": "abc", "torch": "2.14.1",
                                      "python": "3.11.7", "machine": "x86_64, 2 CPUs",
                                      "finished": "2026-11-26T02:00:00Z"}}},
            {"final": {"provenance": {"mixkit": "0.1.0", "commit": "def+dirty", "torch": "2.14.1",
                                      "python": "3.11.7", "machine": "x86_64, 2 CPUs",
                                      "finished": "2026-11-26T01:00:00Z"}}},
            {"final": {}}]                                      # a run from before provenance
    text = provenance_lines(runs, "mixkit compare --preset quick")
    assert "command: `mixkit compare --preset quick`" in text
    assert "2026-11-26T01:00:00Z to 2026-11-26T02:00:00Z" in text
    assert "commit abc, def+dirty (1 of 3 runs did not record it)" in text
    assert "machine: x86_64, 2 CPUs (1 of 3 runs did not record it)" in text


# --- optimisers ---------------------------------------------------------------------------------


def test_adamw_decays_weights_only_and_sgd_everything():
    from mixkit.harness.models import build_model
    from mixkit.harness.train.loop import build_optimizer
    vit = build_model("small-vit", num_classes=10, input_shape=(1, 8, 8))
    opt = build_optimizer(TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.05), vit)
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = ({id(p) for p in g["params"]} for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    names = {id(p): n for n, p in vit.named_parameters()}
    assert {names[i] for i in plain} == {n for n, p in vit.named_parameters()
                                         if p.ndim <= 1 or n in ("cls_token", "pos_embed")}
    assert "blocks.0.attn.in_proj_weight" in {names[i] for i in decayed}
    assert len(decayed) + len(plain) == len(names)
    sgd = build_optimizer(TrainConfig(lr=0.1, weight_decay=5e-4), vit)
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 1
    assert sgd.param_groups[0]["weight_decay"] == 5e-4 and sgd.param_groups[0]["momentum"] == 0.9


def test_config_refuses_an_unknown_optimizer_and_transmix_without_a_vit():
    with pytest.raises(ValueError, match="optimizer: expected sgd or adamw, got 'adam'"):
        TrainConfig(optimizer="adam").validate()
    with pytest.raises(ValueError, match="model: expected small-vit for method transmix.*got 'small-cnn'"):
        TrainConfig(method="transmix", model="small-cnn").validate()


def test_a_worker_runs_log_lines_name_its_label_not_only_its_method(tmp_path, monkeypatch, capsys):
    # two variants of one method (zeta at two gammas) run side by side: their lines must differ
    from mixkit.harness.train import compare as cmp

    def fake_train(cfg, run_dir, resume, progress, log):
        log("epoch 1/1")
        return {}

    monkeypatch.setattr(cmp, "train", fake_train)
    cfg = TrainConfig(method="zeta", seed=3)
    cmp._train_job(cfg, str(tmp_path / "zeta-g5" / "seed3"))
    cmp._train_job(cfg, str(tmp_path / "zeta" / "seed3"))
    assert capsys.readouterr().err.splitlines() == ["[zeta-g5/seed3] epoch 1/1", "[zeta/seed3] epoch 1/1"]
