"""mixkit.harness.analysis: realism distances, scatter ratios, calibration, gallery (against slow loops)."""

import importlib.util
import math
import os

import grid
import pytest
import torch
from torch import nn

import mixkit
from mixkit.harness.analysis import (
    expected_calibration_error,
    half_moons_realism,
    image_realism,
    mix_with_weights,
    moons_manifold_distance,
    nearest_real_distance,
    penultimate_features,
    scatter_ratios,
)

# ---------------------------------------------------------------------------------------------
# nearest_real_distance


@pytest.mark.parametrize("k", [1, 2, 3])
def test_nearest_real_distance_matches_brute_force(gen, k):
    synth = torch.randn(37, 5, generator=gen)
    real = torch.randn(23, 5, generator=gen)
    got, idx = nearest_real_distance(synth, real, k=k, chunk=8, return_index=True)
    for i in range(synth.shape[0]):
        d = sorted((math.dist(synth[i].tolist(), real[j].tolist()), j) for j in range(real.shape[0]))
        assert got[i].item() == pytest.approx(d[k - 1][0], rel=1e-6, abs=1e-9)
        assert (real[idx[i]] - synth[i]).norm().item() == pytest.approx(d[k - 1][0], rel=1e-5)


def test_nearest_real_distance_self_is_zero_and_k2_skips_self(gen):
    real = torch.randn(20, 3, generator=gen)
    assert torch.allclose(nearest_real_distance(real, real), torch.zeros(20, dtype=torch.float64), atol=1e-6)
    second = nearest_real_distance(real, real, k=2)
    assert bool((second > 1e-3).all())


def test_nearest_real_distance_errors():
    with pytest.raises(ValueError, match="same D"):
        nearest_real_distance(torch.zeros(3, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="k: expected an integer in"):
        nearest_real_distance(torch.zeros(3, 2), torch.zeros(4, 2), k=5)


# ---------------------------------------------------------------------------------------------
# half-moons


def test_moons_manifold_distance_zero_on_arcs_and_known_off_arcs():
    t = torch.linspace(0, math.pi, 50, dtype=torch.float64)
    outer = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    inner = torch.stack([1 - torch.cos(t), 1 - torch.sin(t) - 0.5], dim=1)
    assert torch.allclose(moons_manifold_distance(outer), torch.zeros(50, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(moons_manifold_distance(inner), torch.zeros(50, dtype=torch.float64), atol=1e-12)
    pts = torch.tensor([[0.0, 1.5],     # 0.5 above the outer arc's top
                        [-1.0, -0.3],   # below the outer arc's left end, 0.3 away
                        [1.0, -0.7],    # 0.2 below the inner arc's bottom (1, -0.5)
                        [3.0, 0.5]],    # 1.0 right of the inner arc's right end (2, 0.5)
                       dtype=torch.float64)
    got = moons_manifold_distance(pts)
    assert torch.allclose(got, torch.tensor([0.5, 0.3, 0.2, 1.0], dtype=torch.float64), atol=1e-12)


def test_moons_manifold_distance_matches_dense_sampling(gen):
    t = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    curve = torch.cat([torch.stack([torch.cos(t), torch.sin(t)], 1),
                       torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)])
    pts = torch.rand(200, 2, generator=gen, dtype=torch.float64) * torch.tensor([4.0, 3.0]) - torch.tensor([1.5, 1.2])
    ref = torch.cdist(pts, curve).min(dim=1).values
    assert torch.allclose(moons_manifold_distance(pts), ref, atol=1e-3)


@pytest.mark.slow
def test_half_moons_realism_small_run():
    res = half_moons_realism(gammas=(2.8,), n=128, batch=16, draws=2, seed=0, keep_points=True)
    assert set(res) >= {"config", "real", "methods", "points"}
    assert list(res["methods"]) == ["mixup (alpha=1)", "zeta-mixup (gamma=2.8)"]
    for entry in res["methods"].values():
        assert entry["count"] == 2 * 128
        assert entry["points"].shape == (256, 2)
        for key in ("nearest_real", "clean_manifold"):
            assert set(entry[key]) == {"mean", "median", "p90"}
            assert all(math.isfinite(v) and v >= 0 for v in entry[key].values())
        assert entry["nearest_real"]["median"] <= entry["nearest_real"]["p90"]
        assert math.isfinite(entry["shift"])
    # zeta-mixup's own weight is the rank-1 p-series weight for N = batch.
    w1 = float(mixkit.functional.zeta_weights(16, 2.8)[0])
    assert res["methods"]["zeta-mixup (gamma=2.8)"]["own_weight"] == pytest.approx(w1, rel=1e-5)
    # Real points sit at the noise level from the clean manifold.
    assert 0.03 < res["real"]["clean_manifold"]["mean"] < 0.2


def test_mix_with_weights_reads_the_mixing_matrix(gen):
    x = torch.randn(6, 1, 4, 4, generator=gen)
    for mixer in grid.one_each(3):
        mixed, w, _ = mix_with_weights(mixer, x, gen)
        assert torch.allclose(w.sum(dim=1), torch.ones(6), atol=1e-5)
        if not grid.regional(mixer) and grid.interpolating(mixer) and getattr(mixer, "mixers", None) is None:
            # Blending methods: the synthetic sample is exactly W @ x.
            assert torch.allclose(mixed.reshape(6, -1), w @ x.reshape(6, -1), atol=1e-5)
    assert mixkit.MixUp(num_classes=3).num_classes == 3  # the mixer passed in is not modified


def test_image_realism_small_run(gen):
    images = torch.rand(64, 1, 6, 6, generator=gen)
    labels = torch.randint(0, 3, (64,), generator=gen)
    res = image_realism(images, labels, gammas=(4.0,), batch=16, draws=1, seed=0)
    assert res["real"]["nearest_real"]["median"] == pytest.approx(1.0)
    zeta = res["methods"]["zeta-mixup (gamma=4)"]
    assert zeta["count"] == 64 and 0.0 <= zeta["label_agreement"] <= 1.0
    assert all(math.isfinite(v) for v in zeta["nearest_real"].values())
    # With features = pixels the result is the same.
    res2 = image_realism(images, labels, gammas=(4.0,), batch=16, draws=1, seed=0,
                         feature_fn=lambda t: t.flatten(1))
    assert res2["methods"]["zeta-mixup (gamma=4)"]["nearest_real"] == pytest.approx(zeta["nearest_real"])


# ---------------------------------------------------------------------------------------------
# scatter ratios


def _slow_scatter(x, y):
    x = x.double()
    mu = x.mean(0)
    sw = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    sb = torch.zeros_like(sw)
    for c in sorted(set(y.tolist())):
        xc = x[y == c]
        mc = xc.mean(0)
        for row in xc:
            d = (row - mc)[:, None]
            sw += d @ d.T
        e = (mc - mu)[:, None]
        sb += xc.shape[0] * (e @ e.T)
    n = x.shape[0]
    return torch.trace(sw).item() / n, torch.trace(sb).item() / n


def test_scatter_ratios_matches_per_class_loop(gen):
    x = torch.randn(90, 7, generator=gen)
    y = torch.randint(0, 4, (90,), generator=gen) * 3 + 1  # labels need not be 0..K-1
    got = scatter_ratios(x, y)
    within, between = _slow_scatter(x, y)
    assert got["within"] == pytest.approx(within, rel=1e-10)
    assert got["between"] == pytest.approx(between, rel=1e-10)
    assert got["ratio"] == pytest.approx(between / within, rel=1e-10)
    total = ((x.double() - x.double().mean(0)) ** 2).sum().item() / 90
    assert got["total"] == pytest.approx(total, rel=1e-10)
    assert got["classes"].tolist() == sorted(set(y.tolist()))


def test_scatter_ratios_known_answers(gen):
    # Well-separated blobs: class means 100 apart, unit noise -> ratio in the thousands.
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    y = torch.arange(3).repeat_interleave(200)
    x = centres[y] + torch.randn(600, 2, generator=gen)
    blobs = scatter_ratios(x, y)
    assert blobs["ratio"] > 1000
    assert blobs["within"] == pytest.approx(2.0, rel=0.15)  # 2 dims of unit variance
    # Labels independent of the features: between-class scatter is small, ratio near 0.
    noise = scatter_ratios(torch.randn(3000, 4, generator=gen), torch.randint(0, 3, (3000,), generator=gen))
    assert noise["ratio"] < 0.01
    # Invariant to a global scale.
    assert scatter_ratios(5 * x, y)["ratio"] == pytest.approx(blobs["ratio"], rel=1e-6)  # float32 input


def test_scatter_ratios_errors():
    with pytest.raises(ValueError, match=r"expected \(N, D\) and \(N,\)"):
        scatter_ratios(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# penultimate features


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def test_penultimate_features_hook_eval_and_cleanup(gen):
    net = _Net().train()
    x = torch.randn(10, 1, 6, 6, generator=gen)
    y = torch.arange(10) % 3
    loader = [(x[:4], y[:4]), (x[4:], y[4:])]
    feats, labs = penultimate_features(net, loader, "body")
    assert feats.shape == (10, 32) and labs.tolist() == y.tolist()
    net.eval()
    with torch.no_grad():
        ref = net.body(x).flatten(1)
    assert torch.allclose(feats, ref)  # eval mode: dropout off
    net.train()
    penultimate_features(net, loader, "body")
    assert net.training  # mode restored
    assert not net.body._forward_hooks  # hook removed
    with pytest.raises(ValueError, match="layer_name: expected one of"):
        penultimate_features(net, loader, "nope")


# ---------------------------------------------------------------------------------------------
# calibration


def test_expected_calibration_error_hand_worked():
    # 4 bins of width 0.25; confidences 0.9 and 0.8 (bin (0.75, 1]), 0.6 ((0.5, 0.75]), 0.4
    # ((0.25, 0.5]); the second prediction (class 1) is wrong, the others right.
    probs = torch.tensor([[0.9, 0.1, 0.0],
                          [0.1, 0.8, 0.1],
                          [0.6, 0.3, 0.1],
                          [0.4, 0.35, 0.25]])
    labels = torch.tensor([0, 2, 0, 0])
    # (0.75, 1]:   2/4 * |1/2 - 0.85| = 0.175
    # (0.5, 0.75]: 1/4 * |1 - 0.6|    = 0.1
    # (0.25, 0.5]: 1/4 * |1 - 0.4|    = 0.15
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.425, abs=1e-6)


def test_expected_calibration_error_matches_loop_and_limits(gen):
    probs = torch.softmax(torch.randn(500, 5, generator=gen) * 2, dim=1)
    labels = torch.randint(0, 5, (500,), generator=gen)
    conf, pred = probs.max(1)
    ece = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.sum().item() / 500 * abs((pred[sel] == labels[sel]).float().mean().item() - conf[sel].mean().item())
    assert expected_calibration_error(probs, labels) == pytest.approx(ece, abs=1e-6)
    onehot = torch.eye(5)[labels]
    assert expected_calibration_error(onehot, labels) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(probs, labels, n_bins=0)


# ---------------------------------------------------------------------------------------------
# gallery


@pytest.mark.slow
def test_gallery_smoke(tmp_path, gen):
    pytest.importorskip("matplotlib")
    from mixkit.harness.analysis import gallery

    images = torch.rand(24, 1, 12, 12, generator=gen)
    labels = torch.arange(24) % 10
    paths = gallery.make_gallery(tmp_path, images=images, labels=labels, moon_draws=1, batch=16)
    names = ["mixed_batch.png", "classmix.png", "fmix_masks.png", "zeta_weights.png", "half_moons.png"]
    if importlib.util.find_spec("torchvision") is not None:
        names.append("detection.png")
    assert [os.path.basename(p) for p in paths] == names
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(p) > 1000


@pytest.mark.slow
def test_gallery_main_arguments(tmp_path):
    from mixkit.harness.analysis import gallery

    with pytest.raises(SystemExit):
        gallery.main(["--help"])
    if not os.path.exists(os.path.join(gallery.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("Fashion-MNIST IDX files not installed")
    assert gallery.main(["--out", str(tmp_path / "g"), "--moon-draws", "1"]) == 0
    want = ["classmix.png", "fmix_masks.png", "half_moons.png", "mixed_batch.png", "zeta_weights.png"]
    if importlib.util.find_spec("torchvision") is not None:
        want.append("detection.png")   # the detection mixers' picture needs torchvision's drawing
    assert sorted(os.listdir(tmp_path / "g")) == sorted(want)


# ---------------------------------------------------------------------------------------------
# realism command line: several networks, a gamma sweep, test error


def _fake_run(root, data_dir, seed):
    """A run directory as `mixkit train` leaves it (config.yaml + checkpoint.pt) for an untrained
    small CNN on fashion-mnist: enough to embed images, with no training."""
    import yaml

    from mixkit.harness.models import build_model
    from mixkit.harness.train.checkpoint import save_checkpoint
    from mixkit.harness.train.config import TrainConfig, config_to_dict

    root.mkdir(parents=True)
    cfg = TrainConfig(dataset="fashion-mnist", data_dir=str(data_dir), model="small-cnn", seed=seed)
    (root / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    torch.manual_seed(seed)
    model = build_model("small-cnn", num_classes=10, input_shape=(1, 28, 28))
    save_checkpoint(str(root / "checkpoint.pt"), {"model": model.state_dict()})
    return str(root)


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    from test_datasets import make_fashion_dir

    base = tmp_path_factory.mktemp("realism")
    make_fashion_dir(base / "fm", n_train=128, n_test=20)
    runs = [_fake_run(base / f"erm-seed{s}", base / "fm", s) for s in range(3)]
    return base, runs


def _tables(text):
    """{heading: [row cells, ...]} for every '## ' section of the printed report."""
    out = {}
    for section in text.split("\n## ")[1:]:
        heading, _, body = section.partition("\n")
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in body.splitlines() if line.startswith("| ") and not line.startswith("|---")]
        out[heading] = rows[1:]  # without the header row
    return out


def _realism_argv(base, *extra):
    return ["--images", "64", "--moons-draws", "1", "--image-batch", "16", "--data-root", str(base / "fm"),
            *extra]


def test_realism_main_several_networks_summary_results_plot_out(fake_runs, tmp_path, capsys):
    from mixkit.harness.analysis.realism import main, spearman_rank_correlation

    base, runs = fake_runs
    csv_path = tmp_path / "results.csv"
    csv_path.write_text("method,seed,test_error,nll\n"
                        "mixup,0,0.10,1\nmixup,1,0.12,1\nzeta,0,0.20,1\nzeta,1,0.30,1\n"
                        "zeta-g2,0,0.15,1\nerm,0,0.5,1\n")   # zeta-g4 missing, erm not measured
    png, md = tmp_path / "sweep.png", tmp_path / "out" / "realism.md"
    assert main(_realism_argv(base, "--gammas", "2.0", "2.8", "4.0", "--features-from", *runs,
                              "--results", str(csv_path), "--plot", str(png), "--out", str(md))) == 0
    printed = capsys.readouterr().out
    assert md.read_text() == printed  # --out holds exactly what was printed
    tables = _tables(printed)
    names = ["mixup (alpha=1)", "zeta-mixup (gamma=2)", "zeta-mixup (gamma=2.8)", "zeta-mixup (gamma=4)"]
    for ref in ("same images", "held-out"):
        per_net = []
        for run in runs:
            [heading] = [h for h in tables if h.startswith(f"Fashion-MNIST (penultimate features of {run})")
                         and h.split("reference: ")[1].startswith(f"{ref};")]
            rows = tables[heading]
            assert [r[0] for r in rows] == names
            per_net.append({r[0]: (float(r[3]), float(r[2])) for r in rows})  # nearest real mean, shift
        [summary] = [h for h in tables if h.startswith("Summary over 3 network(s)") and h.endswith(ref)]
        for row in tables[summary]:
            name, nr, nr_sd, shift, shift_sd, n = row
            assert n == "3"
            vals = [net[name][0] for net in per_net]
            assert float(nr) == pytest.approx(sum(vals) / 3, abs=1.5e-3)  # per-network values are rounded
            assert float(nr_sd) == pytest.approx(torch.tensor(vals).std().item(), abs=1.5e-3)
            assert float(shift) == pytest.approx(sum(net[name][1] for net in per_net) / 3, abs=1.5e-3)
            assert shift_sd != "–"
    # Realism against test error: every row mapped, zeta-g4 listed as missing, erm ignored.
    [res_heading] = [h for h in tables if h.startswith("Realism against test error")]
    rows = {r[0]: r for r in tables[res_heading]}
    assert rows["mixup (alpha=1)"][1:2] + rows["mixup (alpha=1)"][3:] == ["mixup", "11.00", "2"]
    assert rows["zeta-mixup (gamma=2.8)"][1:2] + rows["zeta-mixup (gamma=2.8)"][3:] == ["zeta", "25.00", "2"]
    assert rows["zeta-mixup (gamma=2)"][1:2] + rows["zeta-mixup (gamma=2)"][3:] == ["zeta-g2", "15.00", "1"]
    assert rows["zeta-mixup (gamma=4)"][1:2] + rows["zeta-mixup (gamma=4)"][3:] == ["zeta-g4", "missing", "0"]
    assert f"missing from {csv_path}: zeta-g4" in printed
    present = ["mixup (alpha=1)", "zeta-mixup (gamma=2)", "zeta-mixup (gamma=2.8)"]
    rho = spearman_rank_correlation([float(rows[m][2]) for m in present], [0.11, 0.15, 0.25])
    assert f"rho = {rho:+.3f} over 3 methods" in printed
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000


def test_realism_main_one_network_summary_has_n1_and_no_std(fake_runs, capsys):
    from mixkit.harness.analysis.realism import main

    base, runs = fake_runs
    assert main(_realism_argv(base, "--gammas", "2.4", "3.4", "--features-from", runs[0])) == 0
    tables = _tables(capsys.readouterr().out)
    assert sum(h.startswith("Fashion-MNIST (penultimate features of") for h in tables) == 2  # two references
    [per_net] = [h for h in tables if h.startswith("Fashion-MNIST") and "reference: held-out;" in h]
    [summary] = [h for h in tables if h.startswith("Summary over 1 network(s)") and h.endswith("held-out")]
    assert [r[0] for r in tables[summary]] == ["mixup (alpha=1)", "zeta-mixup (gamma=2.4)",
                                               "zeta-mixup (gamma=3.4)"]
    for net_row, row in zip(tables[per_net], tables[summary], strict=True):
        assert row[1] == net_row[3] and row[3] == net_row[2]  # the one network's own values
        assert row[2] == row[4] == "–" and row[5] == "1"


def test_compare_method_names():
    from mixkit.harness.analysis.realism import compare_method

    expected = {2.0: "zeta-g2", 2.4: "zeta-g2.4", 2.8: "zeta", 3.4: "zeta-g3.4", 4.0: "zeta-g4", 5.0: "zeta-g5"}
    for gamma, name in expected.items():
        assert compare_method(mixkit.ZetaMixup(gamma=gamma)) == name
    assert compare_method(mixkit.MixUp(alpha=1.0)) == "mixup"
    assert compare_method(mixkit.MixUp(alpha=0.2)) is None  # compare's mixup is alpha = 1
    assert compare_method(mixkit.CutMix(alpha=1.0)) == "cutmix"
    assert compare_method(mixkit.FMix(alpha=1.0)) == "fmix"


def test_default_mixer_names_keep_the_gamma():
    from mixkit.harness.analysis.realism import default_mixers

    names = list(default_mixers((2.0, 2.4, 2.8, 3.4, 4.0, 5.0), 1.0))
    assert names == ["mixup (alpha=1)"] + [f"zeta-mixup (gamma={g})" for g in ("2", "2.4", "2.8", "3.4", "4", "5")]
    with pytest.raises(ValueError, match="distinct"):
        default_mixers((2.8, 2.8), 1.0)


def test_spearman_hand_worked_with_ties():
    from mixkit.harness.analysis.realism import spearman_rank_correlation

    # x ranks (1, 2.5, 2.5, 4), y ranks (1, 3, 2, 4); centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10).
    assert spearman_rank_correlation([1, 2, 2, 3], [10, 30, 20, 40]) == pytest.approx(3 / math.sqrt(10))
    assert spearman_rank_correlation([1, 1, 2], [5, 5, 3]) == pytest.approx(-1.0)
    assert math.isnan(spearman_rank_correlation([1, 2, 3], [4, 4, 4]))
    with pytest.raises(ValueError, match="at least 2"):
        spearman_rank_correlation([1], [2])


def test_spearman_matches_scipy(gen):
    stats = pytest.importorskip("scipy.stats")
    from mixkit.harness.analysis.realism import spearman_rank_correlation

    for _ in range(5):
        x = torch.randint(0, 6, (15,), generator=gen).tolist()  # many ties
        y = torch.randn(15, generator=gen).tolist()
        assert spearman_rank_correlation(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_realism_main_errors(fake_runs, tmp_path, capsys):
    from mixkit.harness.analysis.realism import main

    base, runs = fake_runs
    no_ckpt = tmp_path / "half-run"
    no_ckpt.mkdir()
    (no_ckpt / "config.yaml").write_text("dataset: fashion-mnist\n")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("method,seed,accuracy\nmixup,0,0.9\n")
    cases = [
        (["--features-from", runs[0], str(no_ckpt)],
         f"--features-from {no_ckpt}: expected a mixkit train run directory holding config.yaml and "
         "checkpoint.pt, got a directory without checkpoint.pt"),
        (["--features-from", str(tmp_path / "nowhere")], "got no such directory"),
        (["--results", str(bad_csv)], "expected the columns method, seed, test_error"),
        (["--results", str(tmp_path / "absent.csv")], "No such file or directory"),
        (["--plot", str(tmp_path / "x.png")], "--plot: expected --features-from"),
        (["--gammas", "2.8", "2.8"], "expected distinct values"),
    ]
    for extra, message in cases:
        assert main(_realism_argv(base, *extra)) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # nothing computed before the inputs were checked
        assert captured.err.startswith("realism: error: ") and message in captured.err
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert not (tmp_path / "x.png").exists()
