"""Dense targets: segmentation masks mixed with their images, pixel for pixel.

Every sample's image holds the constant value ``id + 1`` and its class map the class ``id``, so
after mixing, an image pixel says which sample (or which blend of samples) it came from, and the
mixed mask must say the same: pasting methods copy ``mask == image - 1`` exactly; blending methods
return probability maps whose expected ``class + 1`` equals the blended image value.
"""

import grid
import pytest
import torch

import mixkit

B = 6
K = B  # classes: one per sample

# every registered mixer (ClassMix included) in each of its example configurations but the in-place
# ones (the images are reused across draws), the registered combinations, a RandomChoice, and a
# Compose of two pasting mixers (tests/grid.py)
FACTORIES = {**grid.select(grid.mixers(K, masks=True), lambda m: not grid.inplace(m)),
             "compose-paste": lambda: mixkit.Compose([mixkit.CutMix(), mixkit.FMix(mode="elem")], num_classes=K)}


def _pastes(mixer, params) -> bool:
    """Whether dense targets are copied pixel for pixel (class maps stay class maps); for a
    one-of combination, as the mixer it chose does."""
    if isinstance(params, mixkit.ComposedParams) and params.choice is not None:
        mixer = mixer.mixers[params.choice]
    return not mixer.dense_blends


SPATIAL = {"1d": (24,), "2d": (12, 10), "3d": (6, 5, 4)}


def _data(spatial, channels=2):
    ids = torch.arange(B)
    images = (ids + 1.0).view(B, 1, *(1,) * len(spatial)).expand(B, channels, *spatial).contiguous()
    maps = ids.view(B, *(1,) * len(spatial)).expand(B, *spatial).contiguous()
    return images, ids, maps


def _check_provenance(images_out, masks_out, pasting):
    source = images_out[:, 0]  # every channel holds the same value
    torch.testing.assert_close(images_out, source.unsqueeze(1).expand_as(images_out))
    if pasting:
        assert masks_out.dtype == torch.int64 and masks_out.shape == source.shape
        assert torch.equal(masks_out, source.round().long() - 1)
        assert torch.equal(source, source.round())  # pasted, not blended
    else:
        assert masks_out.dtype == torch.float32 and masks_out.shape == (B, K, *source.shape[1:])
        torch.testing.assert_close(masks_out.sum(1), torch.ones_like(source))
        classes = torch.arange(1, K + 1, dtype=torch.float32).view(1, K, *(1,) * (source.ndim - 1))
        torch.testing.assert_close((masks_out * classes).sum(1), source)


@pytest.mark.parametrize("dims", SPATIAL, ids=SPATIAL.keys())
@pytest.mark.parametrize("name", FACTORIES)
def test_every_mask_pixel_comes_from_its_image_pixel(name, dims):
    images, ids, maps = _data(SPATIAL[dims])
    mixer, twin = FACTORIES[name](), FACTORIES[name]()  # twin: called as a whole, in step (Alternate)
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        params = mixer.sample(images, generator=g, masks=maps)  # ClassMix draws from the maps
        mixed, soft, masks = mixer.apply(images, ids, params, masks=maps)
        _check_provenance(mixed, masks, _pastes(mixer, params))
        torch.testing.assert_close(soft.sum(1), torch.ones(B))
        # the forward call with the same seed gives the same three results
        again = twin(images, ids, generator=torch.Generator().manual_seed(seed), masks=maps)
        for a, b in zip(again, (mixed, soft, masks), strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", FACTORIES)
def test_probability_maps_in_follow_the_same_pixels(name):
    images, ids, maps = _data((12, 10))
    probs = torch.nn.functional.one_hot(maps, K).movedim(-1, 1).float()
    mixer = FACTORIES[name]()
    params = mixer.sample(images, generator=torch.Generator().manual_seed(0), masks=maps)
    _, _, from_maps = mixer.apply(images, ids, params, masks=maps)
    _, _, from_probs = mixer.apply(images, ids, params, masks=probs)
    if from_maps.dtype == torch.int64:
        from_maps = torch.nn.functional.one_hot(from_maps, K).movedim(-1, 1).float()
    torch.testing.assert_close(from_probs, from_maps)


def test_segmentation_only_labels_none_and_packed_calls():
    images, ids, maps = _data((8, 8))
    cut = mixkit.CutMix()
    mixed, soft, masks = cut(images, None, masks=maps, generator=torch.Generator().manual_seed(0))
    assert soft is None
    _check_provenance(mixed, masks, pasting=True)
    out = mixkit.CutMix(num_classes=K)([images, ids, "extra"], masks=maps)
    assert isinstance(out, list) and len(out) == 4 and out[3] == "extra"
    with pytest.raises(ValueError, match="num_classes: expected an int to turn class maps into probability maps"):
        mixkit.MixUp()(images, None, masks=maps)


def test_torchvision_mask_in_mask_out():
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    images, ids, maps = _data((8, 8))
    seg = tv_tensors.Mask(maps)
    _, _, out = mixkit.CutMix(num_classes=K)(tv_tensors.Image(images), ids, masks=seg)
    assert type(out) is tv_tensors.Mask
    _, _, blended = mixkit.MixUp(num_classes=K)(images, ids, masks=seg)
    assert type(blended) is torch.Tensor and blended.shape == (B, K, 8, 8)  # probabilities: not a Mask
    with pytest.raises(ValueError, match=r"masks: expected class or probability maps .* got a tv_tensors.BoundingBoxes"):
        mixkit.CutMix(num_classes=K)(images, ids,
                                     masks=tv_tensors.BoundingBoxes(torch.rand(2, 4), format="XYXY", canvas_size=(8, 8)))


def test_video_masks_follow_the_frames_box():
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    b, t, c, h, w = B, 3, 2, 8, 8
    video = tv_tensors.Video((torch.arange(b) + 1.0).view(b, 1, 1, 1, 1).expand(b, t, c, h, w).contiguous())
    maps = torch.arange(b).view(b, 1, 1).expand(b, h, w).contiguous()
    mixed, _, masks = mixkit.CutMix(num_classes=K, mode="elem")(video, torch.arange(b), masks=maps)
    source = mixed.as_subclass(torch.Tensor)[:, 0, 0]
    assert torch.equal(masks, source.long() - 1)


def test_dense_errors():
    images, ids, maps = _data((8, 8))
    cut = mixkit.CutMix(num_classes=K)
    with pytest.raises(ValueError, match=r"masks: expected class maps \(6, 8, 8\) of integers or probability maps "
                                         r"\(6, K, 8, 8\) of floats, got torch.int64 of shape \(6, 8, 9\)"):
        cut(images, ids, masks=torch.zeros(6, 8, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got torch.bool of shape \(6, 8, 8\)"):
        cut(images, ids, masks=maps > 2)
    with pytest.raises(ValueError, match=r"got torch.float32 of shape \(6, 8, 8\)"):
        cut(images, ids, masks=maps.float())  # float maps need a class axis
    with pytest.raises(ValueError, match=r"got torch.int64 of shape \(5, 8, 8\)"):
        cut(images, ids, masks=maps[:5])
    with pytest.raises(TypeError, match="masks: expected a tensor or tv_tensors.Mask, got list"):
        cut(images, ids, masks=[maps])
    with pytest.raises(ValueError, match=r"masks: expected class ids in \[0, 5\], got values in \[4, 9\]"):
        mixkit.MixUp(num_classes=K)(images, ids, masks=maps + 4)


def test_dense_masks_with_inplace_images_and_autograd():
    images, ids, maps = _data((8, 8))
    target = images.clone()
    mixed, _, masks = mixkit.CutMix(num_classes=K, inplace=True)(target, ids, masks=maps)
    assert mixed is target
    _check_provenance(mixed, masks, pasting=True)
    probs = torch.nn.functional.one_hot(maps, K).movedim(-1, 1).float().requires_grad_()
    _, _, out = mixkit.FMix(num_classes=K, max_soft=0.1)(images, ids, masks=probs)
    out.sum().backward()
    torch.testing.assert_close(probs.grad, torch.ones_like(probs))  # mixing keeps the total mass
