"""What the reports show: plots whose axes start at 0, whose titles say the data set, the epochs
and the number of seeds, with error bars only where there are two or more seeds, whole-number
epoch ticks and at least 150 dpi; the gallery's title clear of its column headers; a training
run that neither warns nor prints its log lines through the progress bars."""

import os
import re
import warnings

import pytest

pytest.importorskip("matplotlib")
from matplotlib.container import ErrorbarContainer  # noqa: E402
from PIL import Image  # noqa: E402

from mixkit.harness.train import compare as cmp  # noqa: E402
from mixkit.harness.train import plots  # noqa: E402
from mixkit.harness.train.config import TrainConfig  # noqa: E402

TINY = ["--dataset", "digits", "--train-size", "240", "--test-size", "120", "--batch-size", "32",
        "--model", "small-cnn", "--threads", "1"]


def _runs(seeds, epochs=3):
    errors = {"erm": 0.20, "mixup": 0.18, "cutmix": 0.19}
    runs = []
    for m, e in errors.items():
        for s in seeds:
            err = e + 0.01 * s
            final = {"test_error": err, "macro_f1": 1 - err, "nll": 0.6, "ece": 0.05 + 0.01 * s,
                     "scatter_within": 1.0, "scatter_between": 2.0 + s, "scatter_ratio": 2.0 + s,
                     "train_time_s": 1.0}
            curve = [(k, err + 0.1 / k) for k in range(1, epochs + 1)]
            runs.append({"method": m, "seed": s, "final": final, "curve": curve})
    return runs, list(errors)


def _report(tmp_path, monkeypatch, seeds):
    figures = {}
    save = plots.save_fig

    def keep(fig, path):
        figures[os.path.basename(path)] = fig
        save(fig, path)

    monkeypatch.setattr(plots, "save_fig", keep)
    runs, methods = _runs(seeds)
    base = TrainConfig(dataset="fashion-mnist", train_size=1000, epochs=3)
    summary = cmp.aggregate(runs, methods)
    cmp.write_report(str(tmp_path), base, runs, summary, methods, cmp.DEFAULT_PAIRS)
    return figures


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_compare_plots_are_honest_and_say_what_they_show(tmp_path, monkeypatch, seeds):
    figures = _report(tmp_path, monkeypatch, seeds)
    assert set(figures) == {"error_bars.png", "curves.png", "cohesion_calibration.png"}
    n = len(seeds)
    for name, fig in figures.items():
        title = " ".join(t.get_text() for t in [fig._suptitle] if t is not None)
        title += " ".join(ax.get_title() for ax in fig.axes)
        assert "fashion-mnist" in title and "3 epochs" in title and f"n = {n} seed" in title, (name, title)
        with Image.open(tmp_path / name) as im:
            assert min(im.info["dpi"]) >= 149.9, name
    for name in ("error_bars.png", "cohesion_calibration.png"):
        for ax in figures[name].axes:
            assert ax.get_ylim()[0] == 0.0                 # bars start at 0: the axis is not cut
            bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
            assert len(bars) == (1 if n > 1 else 0)        # no zero-width "± std" at one seed
            if n > 1:
                assert len(bars[0].lines[2][0].get_segments()) == 3     # one whisker per method
    ax = figures["curves.png"].axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "one seed: no error bars" in figures["error_bars.png"]._suptitle.get_text() or n > 1
    # test error and, beside it, the test NLL the main job calls
    assert [ax.get_ylabel() for ax in figures["error_bars.png"].axes] == ["test error (%)", "test NLL (nats)"]


def _title_overlaps(fig) -> list[str]:
    """The axes titles and row labels that reach into the figure's suptitle, as drawn."""
    renderer = fig.canvas.get_renderer()
    if fig._suptitle is None:
        return []
    top = fig._suptitle.get_window_extent(renderer)
    return [text.get_text() for ax in fig.axes for text in (ax.title, ax.yaxis.label)
            if text.get_text() and text.get_window_extent(renderer).y1 > top.y0 + 0.5]


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_gallery_title_clears_the_column_headers(tmp_path, monkeypatch):
    import torch

    from mixkit.harness.analysis import gallery

    overlaps = {}
    save = gallery._save

    class KeepOpen:           # lets the test measure the figure as saved, then closes it
        def __init__(self, plt):
            self.plt = plt

        def close(self, fig):
            pass

    def keep(plt, fig, path):
        out = save(KeepOpen(plt), fig, path)
        overlaps[os.path.basename(path)] = _title_overlaps(fig)
        plt.close(fig)
        return out

    monkeypatch.setattr(gallery, "_save", keep)
    images = torch.rand(16, 1, 28, 28)
    labels = torch.arange(16) % 10
    g = torch.Generator().manual_seed(0)
    gallery.plot_mixed_batch(images, labels, tmp_path / "m.png", generator=g, batch=16)
    gallery.plot_classmix(images, labels, tmp_path / "c.png", generator=g)
    gallery.plot_fmix_masks(tmp_path / "f.png", generator=g)
    gallery.plot_zeta_weights(tmp_path / "z.png")
    assert set(overlaps) == {"m.png", "c.png", "f.png", "z.png"}
    assert all(not v for v in overlaps.values()), overlaps
    for name in overlaps:
        with Image.open(tmp_path / name) as im:
            assert min(im.info["dpi"]) >= 149.9 and min(im.size) >= 500, (name, im.size)


@pytest.mark.slow
def test_compare_with_progress_bars_neither_warns_nor_prints_through_a_bar(tmp_path, capsys):
    from mixkit.harness.cli import main

    out = str(tmp_path / "cmp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["compare", *TINY, "--methods", "erm,mixup", "--seeds", "0", "--epochs", "1",
                     "--progress", "--out", out]) == 0
    mine = [w for w in caught if "mixkit" in w.filename]
    assert not mine, [f"{w.filename}:{w.lineno}: {w.message}" for w in mine]
    err = capsys.readouterr().err
    assert "compare" in err and "%|" in err                      # the bars were drawn
    # Each log line starts a segment of its own (tqdm.write clears the bar first); printed
    # through a bar it would follow the bar's text in the same segment.
    headers = [seg for seg in re.split(r"[\r\n]", err) if "small-cnn (" in seg]
    assert len(headers) == 2 and all(seg.startswith(out) for seg in headers), headers
