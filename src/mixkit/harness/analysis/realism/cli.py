"""``python -m mixkit.harness.analysis.realism``: every input checked before anything is
computed, then the tables of docs/analysis.md printed (and written with ``--out``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ...data.datasets import FASHION_MNIST_DIR, load_fashion_mnist
from ...files import atomic_write_text
from .experiments import default_mixers, half_moons_realism, image_realism, trained_feature_fn
from .report import plot_realism_sweep, read_compare_results, results_section, summary_table, table
from .stats import summarize_networks

REFERENCES = ("same images", "held-out")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mixkit.harness.analysis.realism",
                                     description="Realism of mixup vs zeta-mixup samples.")
    parser.add_argument("--gammas", type=float, nargs="+", default=[2.0, 2.8, 4.0])
    parser.add_argument("--moons-draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=5000, help="Fashion-MNIST training images")
    parser.add_argument("--image-batch", type=int, default=128)
    parser.add_argument("--data-root", default=FASHION_MNIST_DIR)
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--with-masks", action="store_true",
                        help="add CutMix and FMix rows to the image table")
    parser.add_argument("--image-draws", type=int, default=1)
    parser.add_argument("--features-from", nargs="+", default=None, metavar="RUN_DIR",
                        help="measure in the penultimate-feature space of the model trained in each "
                             "RUN_DIR (mixkit train runs on fashion-mnist) instead of pixels, and "
                             "summarise over the networks")
    parser.add_argument("--results", default=None, metavar="CSV",
                        help="a mixkit compare results.csv: print realism against mean test error "
                             "per method and their Spearman rank correlation")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="PNG of realism (and, with --results, test error) against gamma; "
                             "needs --features-from")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="also write everything printed to this Markdown file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mixkit.harness.analysis.realism [--gammas G ...] [--features-from RUN_DIR ...]
    [--results CSV] [--plot PNG] [--out MD]``; bad inputs print ``realism: error: ...`` and
    return 2."""
    from ...train.checkpoint import CheckpointError

    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, CheckpointError) as e:
        message = " ".join(str(e).split())
        print(f"realism: error: {message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    runs = list(args.features_from or [])
    # Every input is checked before anything is computed.
    if args.plot and not runs:
        raise ValueError("--plot: expected --features-from RUN_DIR [RUN_DIR ...] as well (the plot "
                         "is in the networks' feature spaces), got no --features-from")
    if args.skip_images and (runs or args.results or args.plot):
        given = [f for f, v in (("--features-from", runs), ("--results", args.results),
                                ("--plot", args.plot)) if v]
        raise ValueError(f"--skip-images: expected without --features-from, --results and --plot "
                         f"(they need the image tables), got {', '.join(given)}")
    if not args.skip_images and not 2 <= args.image_batch <= args.images:
        raise ValueError(f"--image-batch: expected an integer in [2, --images = {args.images}], "
                         f"got {args.image_batch}")
    mixers = default_mixers(tuple(args.gammas), 1.0)
    from ...train.saved import check_run_dir

    for run in runs:
        check_run_dir(run, f"--features-from {run}", require_config=True)
    test_errors = read_compare_results(args.results) if args.results else None
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot: expected matplotlib to be installed (pip install "
                             "'mixkit[harness]'), got no matplotlib") from None
    networks = [(run, trained_feature_fn(run)) for run in runs]

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text)
        lines.append(text)

    moons = half_moons_realism(tuple(args.gammas), draws=args.moons_draws, seed=args.seed)
    r = moons["real"]
    say(f"## half-moons (n=512, noise=0.1, batch 32, {args.moons_draws} passes, seed {args.seed})")
    say(f"\nreal points: clean manifold mean {r['clean_manifold']['mean']:.3f} median "
        f"{r['clean_manifold']['median']:.3f} p90 {r['clean_manifold']['p90']:.3f}; nearest other "
        f"real mean {r['nearest_other_real']['mean']:.3f} median "
        f"{r['nearest_other_real']['median']:.3f} p90 {r['nearest_other_real']['p90']:.3f}\n")
    say(table(moons, ["nearest_real", "clean_manifold"]))
    if not args.skip_images:
        _image_sections(args, mixers, networks, test_errors, say)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


def _image_sections(args, mixers: dict, networks: list, test_errors: dict | None, say) -> None:
    if args.with_masks:
        from mixkit.mixers import CutMix, FMix

        mixers["CutMix (alpha=1)"] = CutMix(alpha=1.0)
        mixers["FMix (alpha=1, delta=3)"] = FMix(alpha=1.0, decay_power=3.0)
    all_images, all_labels = load_fashion_mnist("train", 2 * args.images, args.data_root)
    if all_images.shape[0] < 2 * args.images:
        raise ValueError(f"--images {args.images}: expected at least {2 * args.images} Fashion-MNIST "
                         f"training images in {args.data_root} ({args.images} source and "
                         f"{args.images} held-out), got {all_images.shape[0]}")
    images, labels = all_images[: args.images], all_labels[: args.images]
    held_out = (all_images[args.images :], all_labels[args.images :])
    by_reference: dict[str, list[dict]] = {ref: [] for ref in REFERENCES}
    for run, feature_fn in networks or [(None, None)]:
        space = "pixels" if run is None else f"penultimate features of {run}"
        for ref_name, reference, ref_labels in ((REFERENCES[0], None, None), (REFERENCES[1], *held_out)):
            res = image_realism(images, labels, tuple(args.gammas), reference=reference,
                                reference_labels=ref_labels, batch=args.image_batch,
                                draws=args.image_draws, seed=args.seed, mixers=mixers,
                                feature_fn=feature_fn)
            by_reference[ref_name].append(res)
            say(f"\n## Fashion-MNIST ({space}), {args.images} training images, batch "
                f"{args.image_batch}, reference: {ref_name}; scale (median real nearest-neighbour "
                f"distance) {res['scale']:.3f}")
            rr = res["real"]["nearest_real"]
            say(f"\nreal images: mean {rr['mean']:.3f} median {rr['median']:.3f} p90 {rr['p90']:.3f}\n")
            say(table(res, ["nearest_real"], agreement=True))
    summaries = {ref: summarize_networks(results) for ref, results in by_reference.items()}
    if networks:
        for ref_name in REFERENCES:
            say(f"\n## Summary over {len(networks)} network(s) (penultimate features), reference: "
                f"{ref_name}")
            say("\nmean and sample std (n - 1) over the networks of each one's nearest real mean "
                "and shift; std '–' for a single network\n")
            say(summary_table(summaries[ref_name]))
    if test_errors is not None:
        space = (f"mean over {len(networks)} network(s)' feature spaces" if networks
                 else "pixel space")
        for line in results_section(summaries[REFERENCES[1]], mixers, test_errors, args.results, space):
            say(line)
    if args.plot:
        plot_realism_sweep([(run, res) for (run, _), res in zip(networks, by_reference[REFERENCES[1]],
                                                                strict=True)],
                           mixers, args.plot, test_errors)
        say(f"\nplot written to {args.plot}")
