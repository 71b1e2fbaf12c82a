"""The losses take what the mixers give (dense probability maps, class ids of any integer dtype)
and refuse, with an error naming the argument, targets that would give a wrong loss silently:
rows that do not sum to 1, negative entries, BCE targets outside [0, 1], lam outside [0, 1],
ids out of range, lists, a pos_weight of the wrong length, an empty batch."""

import pytest
import torch
import torch.nn.functional as F

import mixkit
from mixkit import mixed_cross_entropy, soft_target_binary_cross_entropy, soft_target_cross_entropy

INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


# --- dense logits --------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial", [(5,), (4, 6), (2, 3, 4)])
def test_dense_logits_equal_torch_cross_entropy(spatial):
    g = _g()
    logits = torch.randn(3, 4, *spatial, generator=g)
    ids = torch.randint(0, 4, (3, *spatial), generator=g)
    probs = torch.softmax(torch.randn(3, 4, *spatial, generator=g), dim=1)
    for target in (ids, probs):
        for smoothing in (0.0, 0.2):
            torch.testing.assert_close(soft_target_cross_entropy(logits, target, smoothing),
                                       F.cross_entropy(logits, target, label_smoothing=smoothing))
            per = soft_target_cross_entropy(logits, target, smoothing, reduction="none")
            assert per.shape == (3, *spatial)
            torch.testing.assert_close(per, F.cross_entropy(logits, target, label_smoothing=smoothing,
                                                            reduction="none"))


def test_dense_targets_of_a_mixer_train_with_the_loss():
    g = _g()
    images = torch.rand(4, 3, 8, 8, generator=g)
    seg = torch.randint(0, 5, (4, 8, 8), generator=g)
    _, _, maps = mixkit.MixUp(alpha=1.0, num_classes=5)(images, None, masks=seg, generator=g)
    assert maps.shape == (4, 5, 8, 8)                     # probability maps, mixkit's dense targets
    logits = torch.randn(4, 5, 8, 8, generator=g, requires_grad=True)
    loss = soft_target_cross_entropy(logits, maps)
    loss.backward()
    torch.testing.assert_close(loss, F.cross_entropy(logits, maps))
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_mixed_cross_entropy_takes_dense_ids_and_per_sample_lam():
    g = _g()
    logits = torch.randn(3, 4, 5, 5, generator=g)
    a, b = (torch.randint(0, 4, (3, 5, 5), generator=g) for _ in range(2))
    lam = torch.rand(3, generator=g)
    soft = lam.view(3, 1, 1, 1) * F.one_hot(a, 4).permute(0, 3, 1, 2) \
        + (1 - lam.view(3, 1, 1, 1)) * F.one_hot(b, 4).permute(0, 3, 1, 2)
    torch.testing.assert_close(mixed_cross_entropy(logits, a, b, lam), soft_target_cross_entropy(logits, soft))


# --- integer dtypes ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_class_ids_of_any_integer_dtype(dtype):
    g = _g()
    logits = torch.randn(6, 5, generator=g)
    ids = torch.randint(0, 5, (6,), generator=g)
    expected = F.cross_entropy(logits, ids)
    torch.testing.assert_close(soft_target_cross_entropy(logits, ids.to(dtype)), expected)
    torch.testing.assert_close(mixed_cross_entropy(logits, ids.to(dtype), ids.to(dtype), 0.3), expected)
    multi = (torch.rand(6, 5, generator=g) > 0.5)
    torch.testing.assert_close(soft_target_binary_cross_entropy(logits, multi.to(dtype)),
                               F.binary_cross_entropy_with_logits(logits, multi.float()))


# --- refused targets -----------------------------------------------------------------------------


def _refuses(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_soft_ce_refuses_what_is_not_a_distribution():
    logits = torch.randn(2, 3)
    _refuses(r"^targets: expected probability rows summing to 1 \(within 0.001\), got rows off by up to 1",
             soft_target_cross_entropy, logits, torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    _refuses(r"^targets: expected non-negative probabilities, got entries down to -0.5",
             soft_target_cross_entropy, logits, torch.tensor([[1.5, -0.5, 0.0], [0.0, 1.0, 0.0]]))
    _refuses(r"^targets: expected non-negative probabilities, got entries down to nan",
             soft_target_cross_entropy, logits, torch.tensor([[float("nan"), 0.0, 1.0], [0.0, 1.0, 0.0]]))
    # within the tolerance: accepted (rows of a float32 mixing sum to 1 to rounding)
    assert torch.isfinite(soft_target_cross_entropy(logits, torch.tensor([[0.5, 0.5004, 0.0], [0, 1.0, 0]])))
    # half-precision targets get a tolerance for their rounding
    soft = torch.softmax(torch.randn(2, 300, generator=_g()), 1).bfloat16()
    assert torch.isfinite(soft_target_cross_entropy(torch.randn(2, 300), soft))


def test_losses_refuse_ids_out_of_range_lists_and_empty_batches():
    logits = torch.randn(2, 3)
    for fn in (lambda t: soft_target_cross_entropy(logits, t), lambda t: mixed_cross_entropy(logits, t, t, 0.5)):
        with pytest.raises(ValueError, match=r"^(targets|labels_a): expected class ids in \[0, 2\], got values in \[0, 3\]"):
            fn(torch.tensor([0, 3]))
        with pytest.raises(ValueError, match=r"^(targets|labels_a): expected .*, got list"):
            fn([0, 1])
    _refuses(r"^targets: expected class ids \(2,\) or probabilities \(2, 3\), got torch.bool",
             soft_target_cross_entropy, logits, torch.tensor([True, False]))
    _refuses(r"^labels_b: expected class ids in \[0, 2\]", mixed_cross_entropy, logits,
             torch.tensor([0, 1]), torch.tensor([0, -1]), 0.5)
    _refuses(r"^labels_b: expected integer class ids of shape \(2,\), got torch.float32",
             mixed_cross_entropy, logits, torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), 0.5)
    empty = torch.randn(0, 3)
    _refuses(r"^logits: expected a non-empty batch", soft_target_cross_entropy, empty, torch.zeros(0, 3))
    _refuses(r"^logits: expected a non-empty batch", mixed_cross_entropy, empty,
             torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 0.5)
    _refuses(r"^logits: expected a non-empty batch", soft_target_binary_cross_entropy, empty, torch.zeros(0, 3))
    _refuses(r"^logits: expected a tensor", soft_target_cross_entropy, [[0.0, 1.0]], torch.tensor([0]))
    _refuses(r"^logits: expected floating-point scores, got torch.int64", soft_target_cross_entropy,
             torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]))


@pytest.mark.parametrize("lam", [1.5, -0.1, float("nan"), torch.tensor([0.5, 1.2]), torch.tensor(float("nan"))])
def test_mixed_cross_entropy_refuses_lam_outside_the_unit_interval(lam):
    _refuses(r"^lam: expected (a value|values) in \[0, 1\], got", mixed_cross_entropy, torch.randn(2, 3),
             torch.tensor([0, 1]), torch.tensor([1, 2]), lam)


def test_mixed_cross_entropy_lam_shape_and_type():
    logits, a, b = torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([1, 2])
    _refuses(r"^lam: expected a scalar or 2 values \(one per sample\), got shape \(3,\)",
             mixed_cross_entropy, logits, a, b, torch.full((3,), 0.5))
    _refuses(r"^lam: expected a number or a tensor in \[0, 1\], got str", mixed_cross_entropy, logits, a, b, "0.5")
    # the bounds are allowed
    torch.testing.assert_close(mixed_cross_entropy(logits, a, b, 1), F.cross_entropy(logits, a))
    torch.testing.assert_close(mixed_cross_entropy(logits, a, b, torch.tensor([0.0, 0.0])), F.cross_entropy(logits, b))


def test_bce_refuses_targets_outside_the_unit_interval_and_a_wrong_pos_weight():
    logits = torch.randn(2, 3)
    for bad in (torch.tensor([[2.0, 0, 0], [0, 1, 0]]), torch.tensor([[-0.5, 0, 0], [0, 1, 0]]),
                torch.tensor([[2, 0, 0], [0, 1, 0]]), torch.tensor([[float("nan"), 0, 0], [0, 1, 0]])):
        _refuses(r"^targets: expected values in \[0, 1\], got values in", soft_target_binary_cross_entropy,
                 logits, bad)
    ok = torch.tensor([[0.3, 0.0, 1.0], [0.0, 0.7, 0.7]])           # mixed multi-hot rows need not sum to 1
    torch.testing.assert_close(soft_target_binary_cross_entropy(logits, ok),
                               F.binary_cross_entropy_with_logits(logits, ok))
    _refuses(r"^pos_weight: expected 3 values \(one per class\), got shape \(2,\)",
             soft_target_binary_cross_entropy, logits, ok, pos_weight=torch.ones(2))
    weight = [1.0, 2.0, 3.0]                                         # a list is taken as a tensor
    torch.testing.assert_close(soft_target_binary_cross_entropy(logits, ok, pos_weight=weight),
                               F.binary_cross_entropy_with_logits(logits, ok, pos_weight=torch.tensor(weight)))
    _refuses(r"^targets: expected a \(B, C\) tensor shaped like the logits \(2, 3\), got list",
             soft_target_binary_cross_entropy, logits, [[0, 1, 0], [1, 0, 0]])


def test_the_accelerator_path_asserts_on_the_device(monkeypatch):
    """The branch taken where reading values back would synchronise (CUDA): torch._assert_async,
    run here on CPU tensors (where it fails at once) by making every tensor count as not
    host-readable."""
    import mixkit.functional.labels as labels_module
    import mixkit.losses as losses

    monkeypatch.setattr(losses, "host_readable", lambda t: False)
    monkeypatch.setattr(labels_module, "host_readable", lambda t: False)
    logits = torch.randn(2, 3)
    good = torch.tensor([[0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(soft_target_cross_entropy(logits, good), F.cross_entropy(logits, good))
    cases = [
        (soft_target_cross_entropy, (logits, good * 2), "targets: expected non-negative probability rows"),
        (soft_target_cross_entropy, (logits, torch.tensor([0, 5])), "targets: expected class ids in"),
        (mixed_cross_entropy, (logits, torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.5, 1.5])),
         "lam: expected values in"),
        (soft_target_binary_cross_entropy, (logits, good * 2), "targets: expected values in"),
    ]
    for fn, args, message in cases:
        with pytest.raises(RuntimeError, match=message):
            fn(*args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_checks_read_nothing_back():
    logits = torch.randn(4, 3, device="cuda")
    soft = torch.softmax(torch.randn(4, 3, device="cuda"), 1)
    ids = torch.randint(0, 3, (4,), device="cuda", dtype=torch.uint8)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")          # a host read of device data raises here
    try:
        soft_target_cross_entropy(logits, soft)
        soft_target_cross_entropy(logits, ids)
        mixed_cross_entropy(logits, ids, ids, torch.full((4,), 0.3, device="cuda"))
        soft_target_binary_cross_entropy(logits, soft, pos_weight=torch.ones(3, device="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
