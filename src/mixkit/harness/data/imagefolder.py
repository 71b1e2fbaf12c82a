"""ImageFolder roots (``train/<class>/<image>`` and ``test/`` or ``val/``): the directory scan and the
decoding to 8-bit RGB that the in-memory path (:func:`read_imagefolder`) and the streaming path
(``stream.image_folder_sources``) share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .raw import Raw

__all__ = ["DEFAULT_IMAGE_SIZE", "open_rgb8", "read_imagefolder", "scan_imagefolder"]

#: The square side images are resized to when no ``image_size`` is given.
DEFAULT_IMAGE_SIZE = 64

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_IMAGEFOLDER_LAYOUT = (
    "DATA_DIR/train/<class>/<image> and DATA_DIR/test/<class>/<image> (or val/ instead of test/)"
)


def _scan_split(split_dir: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted folder names) and (file, label) pairs of one ImageFolder-style split."""
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetError(
            f"{split_dir} has no class subfolders: expected {_IMAGEFOLDER_LAYOUT}, found "
            f"{sorted(p.name for p in split_dir.iterdir())[:10]}"
        )
    files = []
    for label, cls in enumerate(classes):
        images = sorted(
            p for p in (split_dir / cls).rglob("*")
            if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not images:
            raise DatasetError(
                f"class folder {split_dir / cls} holds no images: expected files ending in "
                f"{', '.join(_IMAGE_EXTENSIONS)}"
            )
        files.extend((p, label) for p in images)
    return classes, files


def _read_images(files: list[tuple[Path, int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        rgb = open_rgb8(path)
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(rgb, dtype=np.uint8)
    return out.transpose(0, 3, 1, 2), np.array([label for _, label in files], dtype=np.int64)


def open_rgb8(path: Path):
    """The image file at ``path`` decoded by PIL as 8-bit RGB (``_to_rgb8``); a DatasetError naming
    the file when it cannot be read (shared by the in-memory and streaming paths)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return _to_rgb8(img, path)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(
            f"cannot read image file {path}: expected an image PIL can decode, found "
            f"{type(exc).__name__}: {exc}"
        ) from None


# 16-bit greyscale modes: PIL's convert("RGB") would clip every value above 255 to white.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_rgb8(img, path):
    """An 8-bit RGB copy of ``img``: 16-bit greyscale is scaled to 8 bits explicitly (value / 257,
    rounded, so 65535 -> 255); float images, and integer ones beyond 16 bits, are refused."""
    from PIL import Image

    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        # Some Pillow versions read 16-bit PNGs as 32-bit "I": accepted while the values fit 16 bits.
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DatasetError(
                f"cannot read image file {path}: expected 8-bit or 16-bit images, found 32-bit integer "
                f"pixels in [{values.min()}, {values.max()}]; convert them to 8 or 16 bits first"
            )
        grey = np.rint(values / 257.0).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")  # 2-D uint8: mode "L"
    if img.mode == "F":
        raise DatasetError(
            f"cannot read image file {path}: expected 8-bit or 16-bit images, found PIL mode 'F' "
            "(float pixels, whose range is unknown); convert them to 8 or 16 bits first"
        )
    return img.convert("RGB")


def scan_imagefolder(data_dir: str | os.PathLike[str] | None
                     ) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """Class names and the ``(file, label)`` pairs of the train and test (or val) splits of an
    ImageFolder root, with the layout's checks and errors (shared by the in-memory and streaming
    paths)."""
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        raise ImportError("the 'imagefolder' dataset decodes images with Pillow: pip install pillow") from exc
    if data_dir is None:
        raise FileNotFoundError(
            f"the 'imagefolder' dataset needs --data-dir (data_dir=) laid out as {_IMAGEFOLDER_LAYOUT}"
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"imagefolder directory {root} does not exist: expected {_IMAGEFOLDER_LAYOUT}"
        )
    train_dir = root / "train"
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(
            f"{root} must contain train/ and test/ (or val/) subfolders: expected {_IMAGEFOLDER_LAYOUT}, "
            f"found subfolders {present}"
        )
    train_classes, train_files = _scan_split(train_dir)
    if len(train_classes) < 2:
        raise DatasetError(f"{train_dir} has 1 class folder ({train_classes[0]!r}): expected at least 2 "
                           "classes (with one there is nothing to learn and the test error is 0 whatever "
                           f"the model does); {_IMAGEFOLDER_LAYOUT}")
    test_classes, test_files = _scan_split(test_dir)
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DatasetError(
            f"class folders differ between {train_dir} and {test_dir}: expected the same classes, found "
            f"{only_train} only in train and {only_test} only in {test_dir.name}"
        )
    return train_classes, train_files, test_files


def read_imagefolder(data_dir: str | os.PathLike[str] | None, image_size: int | None) -> Raw:
    """Both splits decoded as uint8 ``(N, 3, size, size)`` RGB (scale 255), ``size`` being ``image_size``
    or :data:`DEFAULT_IMAGE_SIZE`, and int64 labels; classes are the sorted folder names."""
    train_classes, train_files, test_files = scan_imagefolder(data_dir)
    size = image_size if image_size is not None else DEFAULT_IMAGE_SIZE
    train_x, train_y = _read_images(train_files, size)
    test_x, test_y = _read_images(test_files, size)
    return Raw(train_x, train_y, test_x, test_y, train_classes, "image", 255.0)
