"""The device-path benchmark (``mixkit bench --device-path``): the op counter, the forced device
path on CPU tensors, the table (no timing assertions)."""

import copy
import json

import grid
import pytest
import torch

import mixkit
from mixkit.functional import execution, labels, mixing, sampling
from mixkit.harness import bench
from mixkit.harness.bench import devicepath as dp
from mixkit.harness.bench.entries import mixkit_entries
from mixkit.mixers import MixUp


def test_the_counter_counts_every_op_and_where_it_ran():
    x = torch.empty(4, 3, device="meta")
    counter = dp.count_ops(lambda: (x + 1).mul_(2).sum())
    assert counter.total == 3 and counter.on_device == 3 and counter.launches == 3
    views = dp.count_ops(lambda: torch.empty(4, device="meta").view(2, 2)[0].add_(1))
    assert views.total == 4 and views.on_device == 4 and views.launches == 1  # empty, view, select: none
    assert dict(counter.by_op) == {"aten.add": 1, "aten.mul_": 1, "aten.sum": 1}
    cpu = dp.count_ops(lambda: torch.ones(2) * 3)
    assert cpu.total == 2 and cpu.on_device == 0 and cpu.launches == 0  # ones (a fill) and mul, on the host
    nothing = dp.count_ops(lambda: x.shape[0] + 1)   # shapes are metadata: no op
    assert nothing.total == 0


def test_the_counter_names_the_mixkit_function_that_dispatched():
    soft = torch.empty(4, 10, device="meta")
    counter = dp.count_ops(lambda: labels.smooth_labels(soft, 0.1), callers=True)
    assert counter.total == 2                          # soft * (1 - eps) + eps / C
    assert dict(counter.by_caller) == {"functional/labels.py:smooth_labels": 2}
    outside = dp.count_ops(lambda: soft * 2, callers=True)
    assert dict(outside.by_caller) == {"-": 1}


def test_forced_device_path_patches_every_import_and_restores_them():
    t = torch.zeros(1)
    before = (execution.host_readable, mixing.host_readable, sampling.on_host)
    assert execution.host_readable(t) and mixing.host_readable(t) and sampling.on_host("cpu")
    with dp.forced_device_path():
        assert not execution.host_readable(t) and not labels.host_readable(t)
        assert not mixing.host_readable(t) and not sampling.on_host("cpu")
    assert (execution.host_readable, mixing.host_readable, sampling.on_host) == before
    assert execution.host_readable(t)


def test_interleaved_timing_forces_the_device_path_per_entry():
    t = torch.zeros(1)
    seen = {True: set(), False: set()}
    fns = [(lambda f=forced: seen[f].add(mixing.host_readable(t)), forced) for forced in (True, False)]
    us = dp.time_interleaved(fns, calls=7, burst=3)
    assert len(us) == 2 and all(v >= 0 for v in us)
    count = [0]
    dp.time_interleaved([(lambda: count.__setitem__(0, count[0] + 1), False)], calls=7, burst=3, warmup=1)
    assert count[0] == 7 + 3   # 3 + 3 + 1 timed, one untimed per round
    assert seen == {True: {False}, False: {True}}
    assert mixing.host_readable(t)   # restored


def test_the_device_path_reads_nothing_on_the_host():
    # on meta every entry runs and returns meta tensors; on small CPU tensors with the device path
    # forced, no entry reads a value back (no _local_scalar_dense: .item(), int(), bool(), ...);
    # the host path does read values (the check can fail)
    xm = torch.empty(8, 3, 16, 16, device="meta")
    ym = torch.empty(8, dtype=torch.int64, device="meta")
    xs, ys = torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,))
    g = torch.Generator().manual_seed(0)
    host_reads = 0
    for method, _, mode, mixer in mixkit_entries(4):
        mixed, soft = mixer(xm, ym, generator=g)
        assert mixed.device.type == "meta" and soft.device.type == "meta", (method, mode)
        with dp.forced_device_path():
            forced = dp.count_ops(lambda m=mixer: m(xs, ys, generator=g))
        assert forced.by_op["aten._local_scalar_dense"] == 0, (method, mode)
        host_reads += dp.count_ops(lambda m=mixer: m(xs, ys, generator=g)).by_op["aten._local_scalar_dense"]
    assert host_reads > 0


@pytest.mark.slow  # (over 3 s: the full suite runs it)
def test_the_table_has_a_row_per_mixkit_entry(monkeypatch):
    monkeypatch.setattr(dp, "SMALL_SHAPE", (4, 3, 8, 8))
    rep = dp.run(calls=1, peers=True, compile_kernels=False)
    want = [(method, mode) for method, _, mode, _ in mixkit_entries(4)]
    assert [(r.method, r.mode) for r in rep.rows] == want
    assert all(r.ops == r.sample_ops + r.apply_ops and 0 < r.launches < r.on_device <= r.ops for r in rep.rows)
    assert all(r.us_device_path > 0 and r.us_host_path > 0 for r in rep.rows)
    assert {p.impl for p in rep.peers} <= set(dp.PEERS)
    assert all(p.us > 0 for p in rep.peers if "failed on CPU" not in p.note)
    md = dp.to_markdown(rep)
    table = md.split("\n\n")[1].splitlines()
    assert len(table) == 2 + len(want)
    assert [tuple(c.strip() for c in line.split("|")[1:3]) for line in table[2:]] == want
    callers = md.split("\n\n")[-1].splitlines()
    assert len(callers) == 2 + len(want) and "functional/" in callers[2]
    tv = next(p for p in rep.peers if p.impl == "torchvision v2" and p.mode == "batch")
    row = next(line for line in table[2:] if line.startswith(f"| {tv.method} | batch |"))
    assert row.split("|")[7].strip() == (f"{tv.ops} / {tv.launches}" if tv.ops is not None else tv.note)


def test_a_peer_that_fails_on_meta_is_reported():
    def peer(x, y):
        if x.device.type == "meta":
            raise NotImplementedError("no meta")
        return x, y

    meta = (torch.empty(2, 3, device="meta"), torch.empty(2, dtype=torch.int64, device="meta"))
    row = dp.measure_peer("m", "p", "batch", peer, meta, (torch.zeros(2, 3), torch.zeros(2)))
    assert row.ops is None and row.launches is None and row.note == "failed on meta: NotImplementedError"


def test_the_command_line(monkeypatch, tmp_path, capsys):
    assert bench.main(["--device-path", "--calls", "0"]) == 2
    seen = {}

    def fake_run(**kw):
        seen.update(kw)
        rep = dp.DevicePathReport(meta={"meta_shape": [2, 3], "small_shape": [2, 3], "num_classes": 10,
                                        "calls": 1, "threads": 1, "torch": "t", "mixkit": "m"})
        rep.rows.append(dp.DeviceRow("m", "batch", 3, 1, 2, 3, 2, 5.0, 4.0, callers={"f": 3},
                                     by_op={"aten.add": 3}))
        return rep

    monkeypatch.setattr(dp, "run", fake_run)
    args = ["--device-path", "--calls", "3", "--no-compile", "--no-peers", "--threads", "1", "--out", str(tmp_path)]
    assert bench.main(args) == 0
    assert seen == {"calls": 3, "peers": False, "compile_kernels": False}
    assert "| m | batch | 3 | 1 + 2 | 3 | 2 |" in capsys.readouterr().out
    assert (tmp_path / "devicepath.md").read_text().startswith("Ops: one call")
    assert json.loads((tmp_path / "devicepath.json").read_text())["meta"]["command"].endswith("--out " + str(tmp_path))


@pytest.mark.slow
def test_the_kernel_count_of_compiled_apply():
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 10, (4,))
    with dp.forced_device_path():
        n = dp.kernel_count(MixUp(num_classes=10), x, y, torch.Generator().manual_seed(0))
    assert isinstance(n, int) and n > 0


_WRAPPER = """
def call(self, args):
    arg0_1, arg1_1 = args
    buf0 = empty_strided_cpu((1, 2), (2, 1), torch.float64)
    cpp_fused_fill_0(buf0)
    buf1 = torch.ops.aten._standard_gamma.default(buf0)
    aten.randint.low_out(-9223372036854775808, 9223372036854775807, [1], out=buf2)
    buf3 = torch.ops.aten.randperm.generator(32, generator=None, device=device(type='cpu'))
    buf4 = reinterpret_tensor(buf3, (4, 8), (8, 1), 0)  # alias
    torch.ops.aten._assert_async.msg(buf5, 'class ids')
    triton_poi_fused_mul_1.run(buf4, buf6, 32, stream=stream0)
    buf7 = extern_kernels.convolution(buf6, buf1, stride=(1, 1))
    buf8.copy_(buf7, False)
    assert_tensor_metadata(buf7, (1, 1), (1, 1), torch.float64, 'torch.ops.aten.convolution.default')
    return (buf8, )
def get_args():
    buf9 = torch.ops.aten.randperm.generator(4)
"""


def test_the_wrapper_code_launches_are_read_from_call_only():
    calls, other = dp.wrapper_launches(_WRAPPER)
    assert calls == 2  # cpp_fused_fill_0, triton_poi_fused_mul_1
    assert dict(other) == {"aten._standard_gamma": 1, "aten.randint": 1, "aten.randperm": 1,
                           "extern_kernels.convolution": 1, "copy_": 1}  # not the assert, views, get_args


@pytest.mark.slow
def test_a_compiled_whole_call_is_counted_and_mixes_validly():
    # inductor draws with its own random kernels, so values differ from eager: check what must
    # hold for any draw (soft rows are distributions made of the batch's classes, each mixed pixel
    # lies between the batch's extremes there) and that the pairing's randperm is an ATen launch
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,))
    for mixer in (MixUp(num_classes=10, mode="elem"), mixkit.CutMix(num_classes=10, mode="elem"),
                  mixkit.FMix(num_classes=10)):
        kernels, other = dp.compiled_call_launches(copy.deepcopy(mixer), x, y)
        assert kernels > 0 and other["aten.randperm"] == 1, (type(mixer).__name__, kernels, other)
        mixed, soft = torch.compile(lambda a, b, m=mixer: m(a, b), fullgraph=True)(x, y)
        assert mixed.shape == x.shape and soft.shape == (8, 10)
        torch.testing.assert_close(soft.sum(1), torch.ones(8))
        assert (soft >= 0).all() and (soft[:, torch.bincount(y, minlength=10) == 0] == 0).all()
        assert (mixed >= x.amin(0) - 1e-6).all() and (mixed <= x.amax(0) + 1e-6).all()


_MODES = grid.modes(10)


@pytest.mark.parametrize("name", [n for n in _MODES if n not in ("choice",)])
def test_the_device_path_draws_and_mixes_as_the_host_path(name):
    # with a CPU generator, batch-level draws are made on the host on every device
    # (``Mixer._host_draws``); the device path's tensor code is the reference of the host one
    mixer = _MODES[name]()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 12, 12, generator=g), torch.randint(0, 10, (6,), generator=g)
    twin = copy.deepcopy(mixer)  # (a combination that takes turns has state)
    host = mixer(x, y, generator=torch.Generator().manual_seed(3))
    with dp.forced_device_path():
        device = twin(x, y, generator=torch.Generator().manual_seed(3))
    for a, b in zip(host, device, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


@pytest.mark.parametrize("k", [0, 1, 37, 143, 144])
def test_one_top_k_row_on_the_device_path_keeps_the_entries_the_host_keeps(k):
    from mixkit.functional import fourier

    values = torch.randn(1, 144, generator=torch.Generator().manual_seed(k))
    values[0, 5:9] = values[0, 40]                    # ties, broken by position
    host = fourier.top_k_row(values, k)
    with dp.forced_device_path():
        device = fourier.top_k_row(values, k)
        ranks = fourier.top_k_mask(values, torch.tensor([k]))
    assert torch.equal(device, host) and torch.equal(ranks, host) and int(host.sum()) == k


def test_the_host_draws_of_one_value_equal_the_tensor_draws_they_stand_for():
    # beta_value, host_box / box_lambda and fourier_mask_host_k (the host draws of a batch-level
    # value) against sample_beta, sample_boxes / boxes_lambda and fourier_masks on the device
    # path: the same draws from the same generator, the same values
    from mixkit.functional import fourier, masks

    for seed in range(300):
        alpha = (0.2, 1.0, 4.0)[seed % 3]
        spatial = ((40,), (13, 17), (5, 6, 7))[seed % 3]
        host, dev = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        value = sampling.beta_value(alpha, generator=host)
        box = masks.host_box(value, spatial, host)
        with dp.forced_device_path():
            lam = sampling.sample_beta(alpha, size=1, generator=dev)
            boxes = masks.sample_boxes(torch.tensor([value]), spatial, generator=dev)
            realised = masks.boxes_lambda(boxes, spatial)
        assert float(lam) == value, seed
        assert boxes.tolist() == [box], seed
        assert float(realised) == masks.box_lambda(box, spatial), seed
        assert torch.equal(host.get_state(), dev.get_state()), seed
        if len(spatial) > 1:
            mask, k = fourier.fourier_mask_host_k(value, spatial, generator=host, host=host)
            with dp.forced_device_path():
                ref = fourier.fourier_masks(torch.tensor([value]), spatial, generator=dev)
            assert torch.equal(mask, ref) and int(ref.sum()) == k, seed
            assert torch.equal(host.get_state(), dev.get_state()), seed


@pytest.mark.slow
def test_compiled_calls_stop_starting_compiles_past_their_budget():
    md, left = dp.compiled_calls("cpu", dp.OVER_EAGER_BOUNDS[:3], budget_s=0.0, num_classes=10)
    rows = [line for line in md.splitlines() if line.startswith("| mixup | elem |")]
    assert len(rows) == 1 and int(rows[0].split("|")[3]) > 0 and "`aten.randperm` 1" in rows[0]
    assert left == ["cutmix elem", "fmix elem"]
