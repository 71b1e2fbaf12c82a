"""A run's configuration: typed validation (YAML and flags alike), list flags, the config stored in
the checkpoint and what ``--resume`` does with it, damaged checkpoints through the CLI."""

import json
import os

import pytest
import torch
import yaml

from mixkit.harness.cli import _overrides, build_parser, main
from mixkit.harness.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mixkit.harness.train.config import TrainConfig, config_from_dict, config_to_dict, resolve_config
from mixkit.harness.train.loop import EPOCH_END_HOOKS

TINY = ["--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
        "--model", "small-cnn", "--threads", "1"]


# --- typed validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("values, match", [
    (dict(nesterov="false"), "nesterov: expected true or false, got 'false'"),
    (dict(amp="no"), "amp: expected true or false, got 'no'"),
    (dict(channels_last=1), "channels_last: expected true or false, got 1"),
    (dict(lr_decay=True), "lr_decay: expected a finite number, got True"),
    (dict(lr=float("inf")), "lr: expected a finite number, got inf"),
    (dict(momentum=float("nan")), "momentum: expected a finite number, got nan"),
    (dict(syner_beta=float("nan")), "syner_beta: expected a finite number or None, got nan"),
    (dict(epochs=2.0), "epochs: expected an integer, got 2.0"),
    (dict(seed="1"), "seed: expected an integer, got '1'"),
    (dict(train_size=True), "train_size: expected an integer or None, got True"),
    (dict(dataset=3), "dataset: expected a string, got 3"),
    (dict(data_dir=["a"]), r"data_dir: expected a string or None, got \['a'\]"),
    (dict(milestones=[100, "150"]), r"milestones: expected a list of integers .*got \[100, '150'\]"),
    (dict(milestones="100,x"), "milestones: expected comma-separated integers like 100,150, got '100,x'"),
    (dict(milestones=100), "milestones: expected a list of integers"),
])
def test_every_field_is_type_checked(values, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(values)


def test_numbers_and_lists_that_are_fine():
    cfg = config_from_dict(dict(lr=1, milestones="100, 150", nesterov=True, syner_beta=None))
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.milestones == [100, 150]
    assert TrainConfig(milestones=[]).milestones == []
    assert config_from_dict(config_to_dict(cfg)) == cfg


def _yaml(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, match", [
    ('nesterov: "false"\n', "nesterov: expected true or false, got 'false'"),
    ('amp: "no"\n', "amp: expected true or false, got 'no'"),
    ("lr_decay: true\n", "lr_decay: expected a finite number, got True"),
    ("lr: .inf\n", "lr: expected a finite number, got inf"),
    ("epochs: ten\n", "epochs: expected an integer, got 'ten'"),
    ("milestones: [100, x]\n", "milestones: expected a list of integers"),
])
def test_yaml_wrong_types_are_cli_errors(tmp_path, capsys, text, match):
    argv = ["train", "--config", _yaml(tmp_path, text), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixkit train: error: ") and match in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "run" / "checkpoint.pt")


def test_yaml_lists_numbers_and_bools(tmp_path):
    path = _yaml(tmp_path, "milestones: [100, 150]\nlr: 1e-3\nweight_decay: 5e-4\nnesterov: true\n")
    cfg = resolve_config(yaml_path=path)
    assert (cfg.milestones, cfg.lr, cfg.weight_decay, cfg.nesterov) == ([100, 150], 0.001, 5e-4, True)
    assert resolve_config(yaml_path=_yaml(tmp_path, 'milestones: "30,60"\n')).milestones == [30, 60]


# --- flags --------------------------------------------------------------------------------------


def test_milestones_flag_is_a_list_of_ints():
    ns = build_parser().parse_args(["train", "--out", "x", "--milestones", "100,150", "--no-amp"])
    over = _overrides(ns)
    assert over == {"milestones": [100, 150], "amp": False}
    assert resolve_config(overrides=over).milestones == [100, 150]
    ns = build_parser().parse_args(["compare", "--out", "x", "--milestones", "5"])
    assert _overrides(ns) == {"milestones": [5]}


@pytest.mark.parametrize("flags, match", [
    (["--milestones", "100,x"], "mixkit train: error: milestones: expected comma-separated integers "
                                "like 100,150, got '100,x'"),
    (["--milestones", "0,5"], "mixkit train: error: milestones: expected a list of integers >= 1"),
    (["--lr", "inf"], "mixkit train: error: lr: expected a finite number, got inf"),
    (["--momentum", "nan"], "mixkit train: error: momentum: expected a finite number, got nan"),
    (["--lr-decay=-inf"], "mixkit train: error: lr_decay: expected a finite number, got -inf"),
])
def test_bad_flags_are_cli_errors(tmp_path, capsys, flags, match):
    assert main(["train", *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_compare_bad_milestones_is_a_cli_error(tmp_path, capsys):
    assert main(["compare", "--milestones", "1,a", "--out", str(tmp_path / "c")]) == 2
    assert "mixkit compare: error: milestones: expected comma-separated integers" in capsys.readouterr().err


# --- damaged checkpoints ------------------------------------------------------------------------


def _fake_run(tmp_path, state=None):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(TrainConfig(dataset="digits"))))
    if state is None:
        (out / "checkpoint.pt").write_bytes(b"")
    else:
        save_checkpoint(str(out / "checkpoint.pt"), state)
    return str(out)


def test_empty_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = _fake_run(tmp_path)
    with pytest.raises(CheckpointError, match="empty \\(0 bytes\\); the file is damaged"):
        load_checkpoint(os.path.join(out, "checkpoint.pt"))
    assert main(["train", "--out", out, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixkit train: error: checkpoint ") and "empty" in err and "Traceback" not in err


def test_checkpoint_without_world_size_is_a_clear_error(tmp_path, capsys):
    state = {"epoch": 1, "model": {}, "optimizer": {}, "scaler": {}, "generators": [torch.Generator().get_state()],
             "method": {}, "history": [], "elapsed": 0.0}
    out = _fake_run(tmp_path, state)
    assert load_checkpoint(os.path.join(out, "checkpoint.pt"))["epoch"] == 1     # loads; not resumable
    with pytest.raises(CheckpointError, match="world_size missing"):
        load_checkpoint(os.path.join(out, "checkpoint.pt"), resume=True)
    assert main(["train", "--out", out, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixkit train: error: checkpoint ") and "world_size missing" in err
    assert "Traceback" not in err


def test_checkpoint_with_bad_world_size_or_generators(tmp_path):
    state = {"epoch": 1, "model": {}, "optimizer": {}, "scaler": {}, "generators": [],
             "method": {}, "history": [], "elapsed": 0.0, "world_size": 1}
    out = _fake_run(tmp_path, state)
    with pytest.raises(CheckpointError, match="generators: expected one state per process \\(1\\), got 0"):
        load_checkpoint(os.path.join(out, "checkpoint.pt"), resume=True)
    save_checkpoint(os.path.join(out, "checkpoint.pt"), dict(state, world_size=0))
    with pytest.raises(CheckpointError, match="world_size: expected an integer >= 1, got 0"):
        load_checkpoint(os.path.join(out, "checkpoint.pt"), resume=True)


# --- the config in the checkpoint and --resume --------------------------------------------------


class _Stop(KeyboardInterrupt):
    pass


def _stop_after_first_epoch(epoch, info):
    raise _Stop


def _interrupted_run(out):
    """A mixup run stopped after its first epoch (checkpoint on disk, no final.json)."""
    EPOCH_END_HOOKS.append(_stop_after_first_epoch)
    try:
        assert main(["train", *TINY, "--method", "mixup", "--epochs", "2", "--out", out]) == 130
    finally:
        EPOCH_END_HOOKS.remove(_stop_after_first_epoch)


def _final(out):
    with open(os.path.join(out, "final.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_resume_uses_the_checkpoint_config_not_an_edited_config_yaml(tmp_path, capsys):
    whole = str(tmp_path / "whole")
    assert main(["train", *TINY, "--method", "mixup", "--epochs", "2", "--out", whole]) == 0
    for i, edit in enumerate(["method: cutmix\n", ""]):            # edited, then emptied
        out = str(tmp_path / f"run{i}")
        _interrupted_run(out)
        state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
        assert state["config"] == config_to_dict(resolve_config(overrides=dict(
            dataset="digits", train_size=240, test_size=120, batch_size=32, model="small-cnn", threads=1,
            method="mixup", epochs=2)))
        cfg_path = os.path.join(out, "config.yaml")
        saved = yaml.safe_load(open(cfg_path).read())
        open(cfg_path, "w").write(edit)
        # a flag that contradicts the run is refused, naming the field
        assert main(["train", "--out", out, "--resume", "--method", "cutmix"]) == 2
        err = capsys.readouterr().err
        assert "mixkit train: error: resume:" in err and "method: run has 'mixup', given 'cutmix'" in err
        assert main(["train", "--out", out, "--resume"]) == 0
        capsys.readouterr()
        assert _final(out)["method"] == "mixup"
        assert _final(out)["test_error"] == _final(whole)["test_error"]
        assert _final(out)["nll"] == _final(whole)["nll"]
        assert yaml.safe_load(open(cfg_path).read()) == saved               # restored


@pytest.mark.slow
def test_resume_of_an_old_checkpoint_falls_back_to_config_yaml(tmp_path, capsys):
    out = str(tmp_path / "run")
    _interrupted_run(out)
    path = os.path.join(out, "checkpoint.pt")
    state = torch.load(path, weights_only=True)
    del state["config"], state["version"]
    save_checkpoint(path, state)                   # as written before checkpoints carried their config
    assert main(["train", "--out", out, "--resume", "--lr", "0.5"]) == 2
    assert "lr: run has 0.1, given 0.5" in capsys.readouterr().err
    assert main(["train", "--out", out, "--resume"]) == 0
    assert _final(out)["method"] == "mixup" and _final(out)["epochs"] == 2


# ---------------------------------------------------------------------------------------------
# Like-for-like comparisons


def test_balanced_sampler_is_a_setting_for_every_method():
    from mixkit.harness.train.compare import like_for_like, sampler_note
    from mixkit.harness.train.config import TrainConfig, balanced_batches

    assert balanced_batches(TrainConfig(method="synermix")) and not balanced_batches(TrainConfig(method="erm"))
    assert balanced_batches(TrainConfig(method="erm", balanced=True))
    assert not balanced_batches(TrainConfig(method="synermix-intra", balanced=False))
    base = TrainConfig()
    assert like_for_like(base, ["erm", "mixup"]).balanced is None
    assert like_for_like(base, ["erm", "synermix-manifold"]).balanced is True
    assert like_for_like(TrainConfig(balanced=False), ["erm", "synermix"]).balanced is False
    assert "class-balanced" in sampler_note(like_for_like(base, ["mixup", "synermix"]))
    assert "uniformly shuffled" in sampler_note(base)


def test_every_method_of_a_balanced_comparison_sees_the_same_batches():
    import torch

    from mixkit.harness.train.config import TrainConfig, balanced_batches
    from mixkit.harness.train.dist import DistInfo
    from mixkit.harness.train.feed import epoch_batches, stable_seed
    from mixkit.samplers import BalancedBatchSampler

    labels = torch.arange(200) % 10
    seen = {}
    for method in ("erm", "mixup", "synermix"):
        cfg = TrainConfig(method=method, balanced=True, batch_size=32)
        assert balanced_batches(cfg)
        sampler = BalancedBatchSampler(labels, cfg.batch_size, seed=stable_seed(cfg.seed, 3))
        seen[method] = [b.tolist() for b in epoch_batches(cfg, 200, 2, DistInfo(), sampler)]
    assert seen["erm"] == seen["mixup"] == seen["synermix"]
    assert any(len(b) > 32 for b in seen["erm"])         # topped up: every present class at least twice


def test_compare_report_says_which_batches(tmp_path, capsys):
    from mixkit.harness.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "digits", "--train-size", "200", "--test-size", "100", "--batch-size",
                 "32", "--threads", "1", "--methods", "erm,synermix-intra", "--seeds", "0", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert "class-balanced batches" in (out / "results.md").read_text()
    import yaml
    for m in ("erm", "synermix-intra"):
        assert yaml.safe_load((out / m / "seed0" / "config.yaml").read_text())["balanced"] is True


def test_synermix_recipe_uses_its_papers_settings():
    from mixkit.harness.train.config import PRESETS

    assert PRESETS["synermix-cifar100"]["manifold_alpha"] == 1.0 and PRESETS["synermix-cifar100"]["cutout"] == 16
