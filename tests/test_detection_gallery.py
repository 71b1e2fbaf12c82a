"""The detection gallery (issue 25): detection.png is written at the gallery's size and DPI, and its
synthetic scenes are consistent (each box the tight box of its mask, key points on their mask)."""

import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("matplotlib")


def test_scenes_boxes_are_the_tight_boxes_of_their_masks():
    from mixkit.harness.analysis.detection_gallery import detection_scenes

    images, targets = detection_scenes(3, 32, generator=torch.Generator().manual_seed(1))
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    for t in targets:
        for box, mask, points in zip(t["boxes"], t["masks"], t["keypoints"], strict=True):
            ys, xs = mask.nonzero(as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            cols, rows = points.floor().long().unbind(-1)
            assert mask[rows, cols].all()


def test_plot_detection_writes_a_png_of_the_expected_size(tmp_path):
    from PIL import Image

    from mixkit.harness.analysis.detection_gallery import main

    assert main(["--out", str(tmp_path), "--seed", "3"]) == 0
    with Image.open(tmp_path / "detection.png") as im:
        assert im.size == (1950, 2040)   # 13 x 13.6 inches at 150 dpi
        assert round(im.info["dpi"][0]) >= 150
