"""Adversarial checks of the ``mixkit`` command: bad input, damaged run directories, concurrent and
killed runs, several processes. Each case runs the real command in a subprocess and checks its
exit status, its message and that no traceback from mixkit reached the user.

    python scripts/adversarial.py [--only SUBSTRING] [--keep DIR]

Prints one line per case and a count; exits 1 if any case fails. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TINY = [
    "--dataset",
    "digits",
    "--train-size",
    "240",
    "--test-size",
    "120",
    "--batch-size",
    "32",
    "--model",
    "small-cnn",
    "--threads",
    "1",
    "--epochs",
    "1",
]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def mixkit(*args, timeout=300, env=None):
    return subprocess.run(
        [sys.executable, "-m", "mixkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or ENV,
    )


def torchrun(*args, script=None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
    ]
    return head + ([script] if script else ["-m", "mixkit"]) + list(args)


def no_mixkit_traceback(stderr: str) -> bool:
    """No frame of mixkit in the output; a traceback only from torchrun's own launcher."""
    if any(line.strip().startswith("File") and "mixkit" in line for line in stderr.splitlines()):
        return False
    return "Traceback" not in stderr or "torch/distributed" in stderr


def clean_error(p, command: str, *needles: str) -> tuple[bool, str]:
    err = p.stderr
    ok = (
        p.returncode != 0
        and f"mixkit {command}: error:" in err
        and no_mixkit_traceback(err)
        and all(n in err for n in needles)
    )
    return ok, f"exit {p.returncode}: {err.strip().splitlines()[-1][:150] if err.strip() else '(no stderr)'}"


def final(d):
    with open(os.path.join(d, "final.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# The cases: name -> function(tmp) returning (passed, detail).

CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


def _bad_flag(name, args, *needles, command="train"):
    @case(name)
    def run(tmp):
        return clean_error(mixkit(command, *args, "--out", os.path.join(tmp, "o")), command, *needles)


for _name, _args, _needle in [
    ("flag: --lr inf", [*TINY, "--lr", "inf"], "lr: expected a finite number"),
    ("flag: --momentum nan", [*TINY, "--momentum", "nan"], "momentum: expected a finite number"),
    ("flag: --lr -1", [*TINY, "--lr", "-1"], "lr: expected a number > 0"),
    ("flag: --epochs 0", [*TINY, "--epochs", "0"], "epochs"),
    ("flag: --batch-size 0", [*TINY, "--batch-size", "0"], "batch_size"),
    ("flag: --batch-size above the set", [*TINY, "--batch-size", "1000"], "batch_size: expected at most"),
    ("flag: --method bogus", [*TINY, "--method", "bogus"], "method: expected one of"),
    ("flag: --dataset bogus", [*TINY, "--dataset", "bogus"], "bogus"),
    ("flag: --milestones 1,x", [*TINY, "--milestones", "1,x"], "milestones: expected"),
    ("flag: --warmup-epochs >= epochs", [*TINY, "--warmup-epochs", "3"], "warmup_epochs"),
    ("flag: --augment rrc-flip in memory", [*TINY, "--augment", "rrc-flip"], "rrc-flip needs"),
    ("flag: --loader bogus", [*TINY, "--loader", "bogus"], "loader: expected one of"),
    ("flag: --workers -1", [*TINY, "--workers", "-1"], "workers"),
    ("flag: --cutout -1", [*TINY, "--cutout", "-1"], "cutout"),
    ("flag: --balanced maybe", [*TINY, "--balanced", "maybe"], "--balanced"),
    ("flag: --train-size above the set", ["--dataset", "digits", "--train-size", "99999"], "train_size"),
    ("flag: --device cuda without a GPU", [*TINY, "--device", "cuda"], "device"),
    ("flag: --config missing", [*TINY, "--config", "/nonexistent.yaml"], "not found"),
    ("imagefolder without --data-dir", ["--dataset", "imagefolder", "--epochs", "1"], "--data-dir"),
    (
        "imagefolder, missing folder",
        ["--dataset", "imagefolder", "--data-dir", "/nonexistent"],
        "does not exist",
    ),
    ("fashion-mnist, empty --data-dir", ["--dataset", "fashion-mnist", "--data-dir", "/tmp"], "fashion"),
]:
    _bad_flag(_name, _args, _needle)


for _name, _args, _needle in [
    ("compare: unknown method", ["--dataset", "digits", "--methods", "erm,bogus", "--seeds", "0"], "bogus"),
    ("compare: duplicate seeds", ["--dataset", "digits", "--methods", "erm", "--seeds", "0,0"], "distinct"),
    ("compare: --jobs 0", ["--dataset", "digits", "--methods", "erm", "--seeds", "0", "--jobs", "0"], "jobs"),
]:
    _bad_flag(_name, _args, _needle, command="compare")


def _yaml_case(name, text, needle):
    @case(name)
    def run(tmp):
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        return clean_error(
            mixkit("train", *TINY, "--config", path, "--out", os.path.join(tmp, "o")), "train", needle
        )


for _name, _text, _needle in [
    ('yaml: nesterov "false"', 'nesterov: "false"\n', "nesterov: expected true or false"),
    ("yaml: lr_decay true", "lr_decay: true\n", "lr_decay: expected a finite number"),
    ('yaml: amp "no"', 'amp: "no"\n', "amp: expected true or false"),
    ("yaml: unknown key", "learning_rate: 0.1\n", "unknown keys"),
    ("yaml: a list", "- 1\n- 2\n", "expected a mapping"),
    ("yaml: malformed", "lr: [1, 2\n", "could not parse"),
    ("yaml: milestones string", "milestones: 100,x\n", "milestones"),
]:
    _yaml_case(_name, _text, _needle)


@case("yaml: 1e-3 read as a number, milestones as list")
def _(tmp):
    path, out = os.path.join(tmp, "c.yaml"), os.path.join(tmp, "o")
    with open(path, "w") as f:
        f.write("lr: 1e-3\nmilestones: 100,150\nschedule: multistep\n")
    p = mixkit("train", *TINY, "--config", path, "--out", out)
    import yaml

    saved = yaml.safe_load(open(os.path.join(out, "config.yaml"))) if p.returncode == 0 else {}
    return p.returncode == 0 and saved.get("lr") == 0.001 and saved.get("milestones") == [
        100,
        150,
    ], f"exit {p.returncode}, saved lr {saved.get('lr')}, milestones {saved.get('milestones')}"


@case("--milestones 100,150 is a list")
def _(tmp):
    out = os.path.join(tmp, "o")
    p = mixkit("train", *TINY, "--schedule", "multistep", "--milestones", "100,150", "--out", out)
    import yaml

    saved = yaml.safe_load(open(os.path.join(out, "config.yaml"))) if p.returncode == 0 else {}
    return saved.get("milestones") == [100, 150], f"exit {p.returncode}, milestones {saved.get('milestones')}"


@case("--out is a file")
def _(tmp):
    path = os.path.join(tmp, "file")
    open(path, "w").close()
    return clean_error(mixkit("train", *TINY, "--out", path), "train", "out")


@case("--out under a file")
def _(tmp):
    path = os.path.join(tmp, "file")
    open(path, "w").close()
    return clean_error(mixkit("train", *TINY, "--out", os.path.join(path, "x")), "train", "out")


@case("show: --out under a file")
def _(tmp):
    path = os.path.join(tmp, "file")
    open(path, "w").close()
    return clean_error(mixkit("show", "--out", os.path.join(path, "x")), "show")


def _finished_run(tmp, *extra):
    out = os.path.join(tmp, "run")
    p = mixkit("train", *TINY, *extra, "--out", out)
    assert p.returncode == 0, p.stderr
    return out


@case("second run into a finished --out")
def _(tmp):
    out = _finished_run(tmp)
    return clean_error(mixkit("train", *TINY, "--out", out), "train", "already holds a run")


@case("two runs at once into one --out")
def _(tmp):
    out = os.path.join(tmp, "run")
    first = subprocess.Popen(
        [sys.executable, "-m", "mixkit", "train", *TINY, "--epochs", "30", "--out", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(out, "config.yaml")) and time.monotonic() < deadline:
            time.sleep(0.1)
        return clean_error(
            mixkit("train", *TINY, "--method", "cutmix", "--out", out), "train", "another run is using it"
        )
    finally:
        first.kill()
        first.wait()


@case("--resume of an empty folder")
def _(tmp):
    os.makedirs(os.path.join(tmp, "e"))
    return clean_error(mixkit("train", "--resume", "--out", os.path.join(tmp, "e")), "train")


@case("--resume with a 0-byte checkpoint")
def _(tmp):
    out = _finished_run(tmp)
    os.remove(os.path.join(out, "final.json"))
    open(os.path.join(out, "checkpoint.pt"), "w").close()
    return clean_error(mixkit("train", "--resume", "--out", out), "train", "checkpoint")


@case("--resume with a checkpoint without world_size")
def _(tmp):
    import torch

    out = _finished_run(tmp)
    os.remove(os.path.join(out, "final.json"))
    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
    del ck["world_size"]
    torch.save(ck, os.path.join(out, "checkpoint.pt"))
    return clean_error(mixkit("train", "--resume", "--out", out), "train", "world_size")


@case("--resume after config.yaml edited to another method")
def _(tmp):
    out = _finished_run(tmp, "--method", "mixup", "--epochs", "2")
    os.remove(os.path.join(out, "final.json"))  # as if killed after epoch 2's checkpoint
    cfg = os.path.join(out, "config.yaml")
    text = open(cfg).read().replace("method: mixup", "method: cutmix")
    open(cfg, "w").write(text)
    p = mixkit("train", "--resume", "--out", out)
    return p.returncode == 0 and final(out)["method"] == "mixup", f"exit {p.returncode}"


@case("--resume after config.yaml emptied")
def _(tmp):
    out = _finished_run(tmp, "--method", "mixup", "--epochs", "2")
    os.remove(os.path.join(out, "final.json"))
    open(os.path.join(out, "config.yaml"), "w").close()
    p = mixkit("train", "--resume", "--out", out)
    f = final(out) if p.returncode == 0 else {}
    return f.get("method") == "mixup" and f.get("epochs") == 2, f"exit {p.returncode}, {f.get('method')}"


@case("--resume with a contradicting flag")
def _(tmp):
    out = _finished_run(tmp, "--method", "mixup")
    os.remove(os.path.join(out, "final.json"))
    return clean_error(mixkit("train", "--resume", "--method", "cutmix", "--out", out), "train", "differ")


@case("kill -9 mid-run, resume equals uninterrupted")
def _(tmp):
    args = [*TINY, "--epochs", "4", "--method", "mixup+fmix", "--seed", "2"]
    whole, cut = os.path.join(tmp, "whole"), os.path.join(tmp, "cut")
    assert mixkit("train", *args, "--out", whole).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixkit", "train", *args, "--out", cut],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    metrics = os.path.join(cut, "metrics.jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(metrics) and len(open(metrics).readlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if os.path.exists(os.path.join(cut, "final.json")):
        return False, "the run finished before the kill (inconclusive)"
    p = mixkit("train", "--resume", "--out", cut)
    a, b = final(whole), final(cut) if p.returncode == 0 else {}
    same = all(a[k] == b.get(k) for k in ("test_error", "nll", "train_loss"))
    return same, f"exit {p.returncode}, nll {a['nll']} vs {b.get('nll')}"


@case("leftover temporaries removed at the next start")
def _(tmp):
    out = _finished_run(tmp, "--epochs", "1")
    os.remove(os.path.join(out, "final.json"))
    junk = os.path.join(out, ".tmp-checkpoint.pt.ab12cd34")
    open(junk, "wb").write(b"x" * 1000)
    p = mixkit("train", "--resume", "--out", out)
    return p.returncode == 0 and not os.path.exists(
        junk
    ), f"exit {p.returncode}, left: {os.path.exists(junk)}"


@case("files follow the umask (022 -> 0644)")
def _(tmp):
    out = os.path.join(tmp, "run")
    p = subprocess.run(
        f"umask 022 && {sys.executable} -m mixkit train {' '.join(TINY)} --out {out}",
        shell=True,
        capture_output=True,
        text=True,
        env=ENV,
    )
    modes = (
        {f: oct(os.stat(os.path.join(out, f)).st_mode & 0o777) for f in ("final.json", "checkpoint.pt")}
        if p.returncode == 0
        else {}
    )
    return set(modes.values()) == {"0o644"}, f"exit {p.returncode}, modes {modes}"


@case("kill -9 of compare --jobs 2 leaves no worker")
def _(tmp):
    out = os.path.join(tmp, "cmp")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mixkit",
            "compare",
            "--dataset",
            "digits",
            "--methods",
            "erm,mixup",
            "--seeds",
            "0",
            "--epochs",
            "50",
            "--jobs",
            "2",
            "--out",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    time.sleep(8)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    alive = [
        c
        for c in children
        if os.path.exists(f"/proc/{c}") and "zombie" not in open(f"/proc/{c}/status").read().lower()
    ]
    return bool(children) and not alive, f"{len(children)} children, alive after: {alive}"


def _images(root, bad=None):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(2):
            d = os.path.join(root, split, f"c{c}")
            os.makedirs(d)
            for i in range(8):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                    os.path.join(d, f"{i}.png")
                )
    if bad == "corrupt":
        open(os.path.join(root, "train", "c0", "0.png"), "wb").write(b"not a png")
    if bad == "float":
        Image.fromarray(rng.random((20, 20)).astype("float32"), mode="F").save(
            os.path.join(root, "train", "c0", "f.tiff")
        )
    if bad == "16bit":
        arr = (rng.integers(0, 65536, (20, 20))).astype("uint16")
        Image.fromarray(arr).save(os.path.join(root, "train", "c0", "s.png"))
    return root


IMG = [
    "--dataset",
    "imagefolder",
    "--image-size",
    "16",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--threads",
    "1",
]


@case("imagefolder: corrupt image")
def _(tmp):
    return clean_error(
        mixkit(
            "train",
            *IMG,
            "--data-dir",
            _images(os.path.join(tmp, "d"), "corrupt"),
            "--out",
            os.path.join(tmp, "o"),
        ),
        "train",
        "0.png",
    )


@case("imagefolder: float image refused")
def _(tmp):
    return clean_error(
        mixkit(
            "train",
            *IMG,
            "--data-dir",
            _images(os.path.join(tmp, "d"), "float"),
            "--out",
            os.path.join(tmp, "o"),
        ),
        "train",
        "float",
    )


@case("imagefolder: 16-bit image scaled, streamed too")
def _(tmp):
    d = _images(os.path.join(tmp, "d"), "16bit")
    a = mixkit("train", *IMG, "--data-dir", d, "--out", os.path.join(tmp, "m"))
    b = mixkit(
        "train",
        *IMG,
        "--data-dir",
        d,
        "--loader",
        "stream",
        "--workers",
        "2",
        "--augment",
        "rrc-flip",
        "--out",
        os.path.join(tmp, "s"),
    )
    return a.returncode == 0 and b.returncode == 0, f"exits {a.returncode}, {b.returncode}"


@case("torchrun 2 processes x3 exit 0")
def _(tmp):
    codes = []
    for i in range(3):
        p = subprocess.run(
            torchrun(
                "train",
                *TINY,
                "--epochs",
                "3",
                "--method",
                "synermix",
                "--device",
                "cpu",
                "--out",
                os.path.join(tmp, f"r{i}"),
            ),
            capture_output=True,
            text=True,
            env=ENV,
        )
        codes.append(p.returncode)
    return codes == [0, 0, 0], f"exits {codes}"


@case("torchrun 2 processes, --sync-bn on CPU")
def _(tmp):
    p = subprocess.run(
        torchrun("train", *TINY, "--device", "cpu", "--sync-bn", "--out", os.path.join(tmp, "o")),
        capture_output=True,
        text=True,
        env=ENV,
    )
    return clean_error(p, "train", "sync_bn: expected a CUDA device")


@case("torchrun 2 processes, streamed, manifold")
def _(tmp):
    p = subprocess.run(
        torchrun(
            "train",
            *TINY,
            "--device",
            "cpu",
            "--loader",
            "stream",
            "--method",
            "manifold",
            "--out",
            os.path.join(tmp, "o"),
        ),
        capture_output=True,
        text=True,
        env=ENV,
    )
    return p.returncode == 0 and final(os.path.join(tmp, "o"))["n_test"] == 120, f"exit {p.returncode}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="run the cases whose name contains this")
    ap.add_argument("--keep", help="keep the cases' folders under this directory")
    ns = ap.parse_args(argv)
    chosen = {k: v for k, v in CASES.items() if ns.only is None or ns.only in k}
    root = ns.keep or tempfile.mkdtemp(prefix="mixkit-adversarial-")
    failed = 0
    t0 = time.perf_counter()
    for i, (name, fn) in enumerate(chosen.items()):
        tmp = os.path.join(root, f"case{i:03d}")
        os.makedirs(tmp, exist_ok=True)
        try:
            ok, detail = fn(tmp)
        except Exception as e:  # a case that crashes is a failed case, reported
            ok, detail = False, f"{type(e).__name__}: {e}"
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:55s} {detail}", flush=True)
    print(f"{len(chosen) - failed} of {len(chosen)} cases passed in {time.perf_counter() - t0:.0f} s")
    if not ns.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
