"""The images of the `pixels` task, read at the I/O edge into NumPy (no JAX): the packaged digits
or a folder of MNIST-style IDX files (`task.data`).

- Packaged: scikit-learn's 8×8 digits (`sklearn.datasets.load_digits`: 1797 images, intensities
  0–16, no download; the optional extra `lstm-vg[data]`). Split by position: the first
  `DIGITS_TRAIN` = 1500 images train, the other 297 test.
- `task.data: DIR`: the four files of MNIST (LeCun, Cortes & Burges), each plain or `.gz`:
  train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
  t10k-labels-idx1-ubyte; the train files train, the t10k files test.

IDX, as LeCun et al. define it: a big-endian header of two zero bytes, a type byte (0x08:
unsigned byte, the only type read here), the number of dimensions n, then n uint32 sizes; then
the values, row-major, exactly as many bytes as the sizes' product. Images have n = 3 (count,
rows, columns), labels n = 1 (count). Every departure is a one-line `UserError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lstm_vg.errors import UserError

DIGITS_TRAIN = 1500  # the packaged digits' first 1500 images train, the other 297 test
CLASSES = 10
IDX_FILES = {  # (split, what) → file name; each may also be gzipped (name + ".gz")
    ("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte",
}
UNSIGNED_BYTE = 0x08
INSTALL_HINT = "pip install 'lstm-vg[data]'"


class Images(NamedTuple):
    """A data set: images (N, P) uint8 (row-major pixels), labels (N,) int32, per split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    scale: int  # the largest intensity the format allows: 16 (digits) or 255
    source: str  # where they came from (meta.json)
    sha256: str  # `digest` of the four arrays


def digest(train_images, train_labels, test_images, test_labels) -> str:
    """sha256 of the four arrays' shapes and bytes (images uint8, labels int32 little-endian), in
    that order: the data set's identity, the same whether its files were gzipped or not."""
    h = hashlib.sha256()
    for array in (train_images, train_labels, test_images, test_labels):
        array = np.ascontiguousarray(array, "<i4" if array.ndim == 1 else np.uint8)
        h.update(repr(array.shape).encode() + array.tobytes())
    return h.hexdigest()


def from_arrays(train_images, train_labels, test_images, test_labels, scale: int, source: str) -> Images:
    """`Images` from arrays (images reshaped to (N, P)), with their digest."""
    arrays = (np.asarray(train_images, np.uint8).reshape(len(train_images), -1),
              np.asarray(train_labels, np.int32),
              np.asarray(test_images, np.uint8).reshape(len(test_images), -1),
              np.asarray(test_labels, np.int32))
    return Images(*arrays, scale, source, digest(*arrays))


@cache
def digits() -> Images:
    """The packaged 8×8 digits, split at `DIGITS_TRAIN`; a UserError without scikit-learn."""
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError(f"the packaged digits need scikit-learn: {INSTALL_HINT}, or set task.data "
                        f"to a folder of MNIST's IDX files") from None
    bunch = load_digits()
    pixels = np.asarray(bunch.images).reshape(len(bunch.images), -1)
    assert np.array_equal(pixels, np.round(pixels)) and pixels.max() <= 16  # intensities 0–16
    labels = bunch.target
    source = f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})"
    return from_arrays(pixels[:DIGITS_TRAIN], labels[:DIGITS_TRAIN], pixels[DIGITS_TRAIN:],
                       labels[DIGITS_TRAIN:], 16, source)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when its name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as file:
                return file.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        what = "not a readable gzip file" if path.suffix == ".gz" else "cannot read"
        raise UserError(f"{path}: {what} ({error.__class__.__name__})") from None


def read_idx(path: Path, dimensions: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `dimensions` sizes (3 for images, 1 for labels), as a
    uint8 array of those sizes; a one-line UserError naming the file for anything else."""
    raw = read_bytes(path)
    expected = f"an IDX file of unsigned bytes with {dimensions} dimension{'s' if dimensions > 1 else ''}"
    magic = int.from_bytes(raw[:4], "big")
    want = UNSIGNED_BYTE << 8 | dimensions
    if len(raw) < 4 or magic != want:
        found = f"magic number 0x{magic:08x}" if len(raw) >= 4 else f"only {len(raw)} bytes"
        raise UserError(f"{path}: {found}; expected {expected} (magic number 0x{want:08x})")
    header = 4 + 4 * dimensions
    if len(raw) < header:
        raise UserError(f"{path}: the header is cut off ({len(raw)} bytes; {expected} has {header})")
    sizes = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dimensions))
    count, need = len(raw) - header, math.prod(sizes)
    if count != need:
        problem = "truncated" if count < need else "too long"
        raise UserError(f"{path}: {problem}: {count} bytes of values; its header's sizes "
                        f"{' × '.join(map(str, sizes))} need exactly {need}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(sizes)


def find(folder: Path, name: str) -> Path:
    """`name` in `folder`, else `name.gz`; a UserError when neither is there."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    files = ", ".join(IDX_FILES.values())
    raise UserError(f"{folder / name}: no such file (nor {name}.gz); the folder must hold MNIST's "
                    f"IDX files {files} (each may be .gz)")


def check_split(split: str, images: np.ndarray, labels: np.ndarray, paths: dict) -> None:
    """Labels 0–9, one per image, at least one image."""
    image_file, label_file = paths[split, "images"], paths[split, "labels"]
    if len(images) == 0:
        raise UserError(f"{image_file}: holds no images")
    if len(labels) != len(images):
        raise UserError(f"{label_file}: {len(labels)} labels for the {len(images)} images of "
                        f"{image_file.name}; expected one label per image")
    wrong = np.flatnonzero(labels >= CLASSES)
    if wrong.size:
        raise UserError(f"{label_file}: label {labels[wrong[0]]} at index {wrong[0]}; expected "
                        f"classes 0–{CLASSES - 1}")


@cache
def read_folder(folder: Path, stamps: tuple) -> Images:
    """The four IDX files of `folder` (`stamps`: their sizes and times, so a changed file is
    read again rather than taken from the cache)."""
    del stamps
    paths = {key: find(folder, name) for key, name in IDX_FILES.items()}
    arrays = {key: read_idx(path, 3 if key[1] == "images" else 1) for key, path in paths.items()}
    for split in ("train", "test"):
        check_split(split, arrays[split, "images"], arrays[split, "labels"], paths)
    train_shape, test_shape = arrays["train", "images"].shape[1:], arrays["test", "images"].shape[1:]
    if train_shape != test_shape:
        raise UserError(f"{paths['test', 'images']}: {test_shape[0]}×{test_shape[1]} images, but those "
                        f"of {paths['train', 'images'].name} are {train_shape[0]}×{train_shape[1]}")
    return from_arrays(arrays["train", "images"], arrays["train", "labels"], arrays["test", "images"],
                       arrays["test", "labels"], 255, str(folder))


def stamps(folder: Path) -> tuple:
    """(name, size, mtime) of the folder's files: what `read_folder`'s cache is keyed on."""
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
                        if p.is_file()))


def load(data: str | None, folder: str, where: str) -> Images:
    """The images of `task.data` (a folder, relative to `folder`, the config's), or the packaged
    digits when it is None; a one-line UserError starting with `where` for what cannot be read."""
    try:
        if data is None:
            return digits()
        try:
            path = (Path(folder) / data).resolve()
            found = path.is_dir()
            files = stamps(path) if found else ()
        except (OSError, ValueError) as error:  # unreadable, or no path at all ("a\0b")
            raise UserError(f"{data!r}: cannot read it as a folder ({error})") from None
        if not found:
            raise UserError(f"{path}: no such folder; expected a folder holding MNIST's IDX files "
                            f"{', '.join(IDX_FILES.values())} (each may be .gz)")
        return read_folder(path, files)
    except UserError as error:
        key = "task.name: pixels" if data is None else "task.data"
        raise UserError(f"{where}: {key}: {error}") from None


def pixels_task(task, folder: str, where: str):
    """The `pixels` task of a config's task section (`config.TaskConfig`) on its images."""
    from lstm_vg.core import tasks

    images = load(task.data, folder, where)
    return tasks.Pixels.of(tasks.PixelArrays(*images[:4]), images.source, images.sha256, images.scale,
                           task.order, task.pad, task.threshold)
