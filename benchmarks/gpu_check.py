"""The CUDA check, in one command: ``python benchmarks/gpu_check.py`` (from the repository root).

On a machine with an NVIDIA GPU (after ``pip install -e .[harness,peers,test]``) it runs

1. ``python -m pytest tests/test_cuda.py tests/test_mixers_contract.py
   tests/test_training_conditions.py --device cuda -q``;
2. the sync-debug check: the tests of ``tests/test_cuda.py`` that run the mixers and the
   hidden-layer methods under ``torch.cuda.set_sync_debug_mode("error")``, read from the same
   run's JUnit XML, must all have run and passed (none skipped);
3. ``mixkit bench --device cuda`` (``--quick``: the shape tables only),
4. the kernels inductor generates for a compiled whole call (no generator) of each mixer whose
   eager device path is over issue 24's op bounds (``devicepath.compiled_calls``),

and writes ``cuda.md`` (UTC date, GPU, torch and CUDA versions, the pytest summary line, the
sync-debug result, the bench tables), ``cuda.json`` (the bench's JSON) and ``cuda_check.log``
into ``docs/bench`` or ``--out DIR`` (for a run on a remote machine whose files are copied back).
The published CPU figures (``bench.md``, ``bench.json``) are not touched.

Every part runs even when an earlier one fails, so the report says what failed; the exit status
is 1 when any part failed, 2 when there is no CUDA device (or bad arguments), 0 when all passed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILES = ["tests/test_cuda.py", "tests/test_mixers_contract.py", "tests/test_training_conditions.py"]
SYNC_TESTS = "sync_debug"  # names of the sync-debug tests in tests/test_cuda.py contain this


def pytest_summary(output: str) -> str | None:
    """The final summary line of a pytest run (``12 passed, 3 skipped in 4.56s``), without the
    ``=`` padding; None when there is none (pytest crashed)."""
    for line in reversed(output.strip().splitlines()):
        text = line.strip().strip("=").strip()
        if re.search(r"\b(passed|failed|error|errors|skipped|deselected|xfailed|xpassed|no tests ran)\b",
                     text) and re.search(r"\bin [\d.]+s\b", text):
            return text
    return None


def sync_debug_results(junit_xml: str | Path) -> dict:
    """Counts of the sync-debug tests of tests/test_cuda.py in a JUnit XML report:
    ``{"passed": n, "failed": n, "skipped": n}``."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        if "test_cuda" not in case.get("classname", "") or SYNC_TESTS not in case.get("name", ""):
            continue
        if case.find("skipped") is not None:
            counts["skipped"] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        else:
            counts["passed"] += 1
    return counts


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd: list[str], log: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` in the repository root, echoing its output, and keep the output in ``log``."""
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    print(proc.stdout, end="", flush=True)
    log.append("$ " + " ".join(cmd) + "\n" + proc.stdout)
    return proc


def _cudnn_version() -> str:
    import torch

    try:
        return str(torch.backends.cudnn.version())
    except Exception as exc:  # metadata only: the report is still written
        return f"unknown ({type(exc).__name__})"


def _demote(markdown: str) -> str:
    """The bench report without its title, headings one level down, to sit under cuda.md's own."""
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + line if line.startswith("#") else line for line in lines).strip("\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "bench"),
                   help="directory for cuda.md, cuda.json and cuda_check.log (default: docs/bench)")
    p.add_argument("--quick", action="store_true", help="bench: the shape tables only (mixkit bench --quick)")
    p.add_argument("--repeats", type=int, default=None, help="bench: timed calls per entry")
    p.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="bench: bandwidth for the HBM floor (default: 4800 on an H200, else measured)")
    p.add_argument("--device", default="cuda", help="the CUDA device (default: cuda)")
    p.add_argument("--compile-budget-s", type=float, default=180.0,
                   help="compiled calls: stop starting new compiles after this many seconds (default: 180)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available on this machine (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda}); run it on a machine with an NVIDIA GPU. Nothing was run.",
              file=sys.stderr)
        return 2
    if torch.device(args.device).type != "cuda":
        print(f"gpu_check: --device expected cuda or cuda:N, got {args.device!r}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(torch.device(args.device))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    failures: list[str] = []
    log: list[str] = []

    with tempfile.TemporaryDirectory(prefix="mixkit-gpu-check-") as tmp:
        tmp = Path(tmp)
        # 1. The tests on the device.
        junit = tmp / "junit.xml"
        proc = _run([sys.executable, "-m", "pytest", *TEST_FILES, "--device", args.device, "-q",
                     "-p", "no:cacheprovider", f"--junitxml={junit}"], log)
        summary = pytest_summary(proc.stdout) or f"(no pytest summary line; exit status {proc.returncode})"
        if proc.returncode != 0:
            failures.append(f"pytest (exit status {proc.returncode}): {summary}")

        # 2. The sync-debug tests: all ran, none skipped, none failed.
        if junit.exists():
            sync = sync_debug_results(junit)
            sync_line = (f"{sync['passed']} passed, {sync['failed']} failed, {sync['skipped']} skipped "
                         f"(tests/test_cuda.py tests with '{SYNC_TESTS}' in their name)")
            if sync["passed"] == 0 or sync["failed"] or sync["skipped"]:
                failures.append(f"sync-debug tests: {sync_line}")
        else:
            sync_line = "no JUnit report: pytest did not run"
            failures.append(f"sync-debug tests: {sync_line}")

        # 3. The benchmark on the device.
        bench_dir = tmp / "bench"
        cmd = [sys.executable, "-m", "mixkit", "bench", "--device", args.device, "--out", str(bench_dir)]
        if args.quick:
            cmd.append("--quick")
        if args.repeats is not None:
            cmd += ["--repeats", str(args.repeats)]
        if args.bandwidth_gbs is not None:
            cmd += ["--bandwidth-gbs", str(args.bandwidth_gbs)]
        bench = _run(cmd, log)
        bench_md = bench_dir / "bench.md"
        if bench.returncode != 0 or not bench_md.exists():
            failures.append(f"mixkit bench (exit status {bench.returncode})")
            bench_text = "The benchmark failed; its output is in cuda_check.log."
        else:
            bench_text = _demote(bench_md.read_text(encoding="utf-8"))
            shutil.copyfile(bench_dir / "bench.json", out / "cuda.json")
            if (bench_dir / "zeta_scaling.png").exists():
                shutil.copyfile(bench_dir / "zeta_scaling.png", out / "cuda_zeta_scaling.png")

    # 4. Compiled whole calls on the device: inductor's launches for the entries over the eager
    # op bounds (mixkit.harness.bench.devicepath.compiled_calls), within a compile-time budget.
    from mixkit.harness.bench import devicepath

    try:
        compiled_text, left = devicepath.compiled_calls(args.device, budget_s=args.compile_budget_s)
    except Exception as exc:  # reported as a failure below, with its type and message
        failures.append(f"compiled calls: {type(exc).__name__}: {exc}")
        compiled_text, left = f"The compiled calls failed: {type(exc).__name__}: {exc}\n", []
    if left:
        compiled_text += (f"\nNot compiled (past the {args.compile_budget_s:.0f} s budget): "
                          f"{', '.join(left)}.\n")

    command = " ".join(["python benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    verdict = "all passed" if not failures else "**FAILED**: " + "; ".join(failures)
    report = "\n".join([
        "# mixkit on CUDA",
        "",
        f"- Date: {date}",
        f"- GPU: {gpu}",
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {_cudnn_version()}, "
        f"Python {sys.version.split()[0]}",
        f"- Command: `{command}`",
        f"- Result: {verdict}",
        "",
        "## Tests",
        "",
        f"`python -m pytest {' '.join(TEST_FILES)} --device {args.device} -q`",
        "",
        f"    {summary}",
        "",
        f"Sync-debug tests (`torch.cuda.set_sync_debug_mode(\"error\")`): {sync_line}.",
        "",
        "## Benchmark",
        "",
        bench_text,
        "",
        "## Compiled whole calls (inductor, no generator, batch 32×3×32×32 on the device)",
        "",
        compiled_text,
    ])
    (out / "cuda.md").write_text(report, encoding="utf-8")
    (out / "cuda_check.log").write_text("\n".join(log), encoding="utf-8")
    print(f"gpu_check: wrote {out / 'cuda.md'}", file=sys.stderr)
    if failures:
        for f in failures:
            print(f"gpu_check: FAILED: {f}", file=sys.stderr)
        return 1
    print("gpu_check: all passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
