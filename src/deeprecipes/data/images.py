"""Folders of images (PNG, JPEG, ...) as datasets: any folder (``image-folder``) and CelebA (``celeba``), for the
DCGAN of cookbook 11.3 (carpedm20/DCGAN-tensorflow: ``--dataset NAME --input_fname_pattern "*.jpg" --crop``).

Each image is read with Pillow, cut to its central ``crop`` x ``crop`` pixels when ``crop`` is set (carpedm20's
``--crop --input_height=108`` for CelebA), resized to ``size`` x ``size`` and kept as uint8 (n, C, size, size):
CelebA's 202,599 faces at 64 x 64 are 2.5 GB so, 10 GB as float32; models scale a batch to [0, 1] as it arrives.
A folder of more than :data:`CACHE_ABOVE` images is decoded once: the array is cached under
``<cache>/image-folder/`` by the folder, the pattern, the settings and every file's name, size and time.

CelebA (``img_align_celeba.zip``, 1.4 GB, 202,599 aligned faces of 178 x 218) is looked for as the folder
``img_align_celeba`` or the zip in ``<data dir>/celeba/``, ``<data dir>/`` and the cache; otherwise the zip is
downloaded into the cache (Google Drive, then the Dropbox mirror the CelebA page names), checked against its
published MD5, and unpacked beside it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..fileio import cache_dir, file_mode
from ..params import NonNegativeInt, PositiveInt, Seed
from ..registry import register_dataset
from . import sources
from .base import ArrayData, DataSplits
from .sources import ENV_DATA, ENV_OFFLINE, FileSpec, download, offline

__all__ = ["CACHE_ABOVE", "CELEBA_ZIP", "celeba", "find_celeba", "image_folder", "list_images", "read_images"]

log = logging.getLogger(__name__)

CACHE_ABOVE = 2000  # folders with more images than this are decoded once and cached
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CELEBA_ZIP = FileSpec(
    "img_align_celeba.zip",
    None,  # the published checksum is an MD5 (CELEBA_MD5), checked by celeba_check
    (
        "https://drive.usercontent.google.com/download?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM&export=download&confirm=t",
        "https://www.dropbox.com/sh/8oqt9vytwxb3s4r/AADIKlz8PR9zr6Y20qbkunrba/Img/img_align_celeba.zip?dl=1",
    ),
)
CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"  # as torchvision's CelebA checks it
CELEBA_FOLDER = "img_align_celeba"


def list_images(folder: str | os.PathLike[str], pattern: str = "*") -> list[Path]:
    """The image files in ``folder`` whose path relative to it matches ``pattern`` (a glob: ``*.jpg``,
    ``**/*.png``, ``*_cropped.png``), sorted; files whose suffix is not an image's are passed over."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} not found" if not root.exists() else f"{root} is not a folder")
    try:
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except (ValueError, NotImplementedError) as e:
        raise ConfigError(f"data.pattern {pattern!r} is not a glob pattern ({e})") from None
    if not files:
        raise DataError(f"no image files match {pattern!r} in {root} (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _read_one(path: Path, crop: int, size: int, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if crop:
                w, h = img.size
                if crop > min(w, h):
                    raise DataError(f"{path}: {w} x {h} pixels, smaller than the crop of {crop}")
                left, top = (w - crop) // 2, (h - crop) // 2
                img = img.crop((left, top, left + crop, top + crop))
            img = img.resize((size, size), Image.Resampling.BICUBIC)
            pixels = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({' '.join(str(e).split())})") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_images(files: list[Path], crop: int = 0, size: int = 64, channels: int = 3) -> np.ndarray:
    """uint8 (n, channels, size, size): each file cut to its central ``crop`` pixels (0: the whole image) and
    resized to ``size`` x ``size``, in RGB (3 channels) or grey (1)."""
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels}")
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    mode = "RGB" if channels == 3 else "L"
    for i, path in enumerate(files):
        out[i] = _read_one(path, crop, size, mode)
    return out


def _cache_key(root: Path, files: list[Path], settings: tuple[object, ...]) -> str:
    h = hashlib.sha256(repr((str(root.resolve()), settings)).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _cached_images(root: Path, files: list[Path], crop: int, size: int, channels: int) -> np.ndarray:
    """:func:`read_images`, through the cache for big folders (written to a temporary file, then renamed)."""
    if len(files) <= CACHE_ABOVE:
        return read_images(files, crop, size, channels)
    path = cache_dir() / "image-folder" / f"{_cache_key(root, files, (crop, size, channels))}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(files), channels, size, size) and cached.dtype == np.uint8:
                return cached
        except (OSError, ValueError):
            pass
        log.warning("decoding again: the cached images %s do not load", path)
    log.info("decoding %d images from %s (cached afterwards in %s)", len(files), root, path.parent)
    images = read_images(files, crop, size, channels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        log.warning("could not cache the decoded images in %s: %s", path.parent, e.strerror or e)
        return images
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, images, allow_pickle=False)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not cache the decoded images in %s: %s", path.parent, e.strerror or e)
        Path(tmp).unlink(missing_ok=True)
    return images


def _split(name: str, images: np.ndarray, test_size: int, split_seed: int, where: Path) -> DataSplits:
    n = len(images)
    if n < 2:
        raise DataError(f"{where}: needs at least 2 images (one to train on, one to test), found {n}")
    n_test = min(test_size, max(1, n // 10))
    order = np.random.default_rng(split_seed).permutation(n)
    x = torch.from_numpy(images)
    train, test = ArrayData(x[np.sort(order[n_test:])]), ArrayData(x[np.sort(order[:n_test])])
    meta = {"shape": list(images.shape[1:]), "folder": str(where), "dtype": "uint8"}
    return DataSplits(name, "random", train, test, meta=meta)


@register_dataset("image-folder")
def image_folder(
    data_dir: str | None = None,
    path: str = "",
    pattern: str = "*",
    crop: NonNegativeInt = 0,
    size: PositiveInt = 64,
    channels: PositiveInt = 3,
    test_size: NonNegativeInt = 1000,
    split_seed: Seed = 0,
) -> DataSplits:
    """The images of a folder, e.g. ``deeprecipes run dcgan-images --set data.path=~/faces``.

    Parameters
    ----------
    path : str
        The folder (``~`` expanded; a relative path that is not found here is looked for in the data folder).
    pattern : str
        Glob of the files to take, relative to ``path``: ``*.jpg``, ``**/*.png`` (sub-folders), ``*_cropped.png``.
    crop : int
        Side of the central square cut from each image before resizing (carpedm20's ``--crop`` with
        ``--input_height``); 0 resizes the whole image.
    size : int
        Side of the images the model sees.
    channels : int
        3 for RGB, 1 for grey.
    test_size : int
        Images held out (at most a tenth of the folder), on which D's accuracy is reported.

    Returns
    -------
    DataSplits
        ``train`` and ``test``, x uint8 (n, channels, size, size), no labels.
    """
    if not path:
        raise ConfigError("dataset 'image-folder' needs a folder: --set data.path=DIR (and data.pattern='*.jpg')")
    root = Path(path).expanduser()
    user = sources.data_dir(data_dir)
    if not root.exists() and not root.is_absolute() and user is not None and (user / root).exists():
        root = user / root
    files = list_images(root, pattern)
    return _split("image-folder", _cached_images(root, files, crop, size, channels), test_size, split_seed, root)


def celeba_check(path: Path) -> None:
    """A DataError unless ``path`` has CelebA's published MD5 (``img_align_celeba.zip``)."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
    if md5.hexdigest() != CELEBA_MD5:
        raise DataError(f"{path}: MD5 {md5.hexdigest()} is not img_align_celeba.zip's {CELEBA_MD5}")


def _unpack(zip_path: Path, into: Path) -> Path:
    """Unpack the zip's ``img_align_celeba/`` into ``into`` (a temporary folder first, renamed when complete)."""
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=into, prefix=".unpacking-"))
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = [m for m in z.namelist() if m.startswith(f"{CELEBA_FOLDER}/")]
            if not members:
                raise DataError(f"{zip_path}: holds no {CELEBA_FOLDER}/ folder")
            z.extractall(tmp, members)
        os.replace(tmp / CELEBA_FOLDER, into / CELEBA_FOLDER)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{zip_path}: cannot unpack ({' '.join(str(e).split())})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return into / CELEBA_FOLDER


def find_celeba(data_dir: str | None = None) -> Path:
    """The folder of CelebA's aligned faces: found, unpacked from a zip found, or downloaded (see the module)."""
    user = sources.data_dir(data_dir)
    cache = cache_dir() / "celeba"
    places = ([user / "celeba", user] if user is not None else []) + [cache]
    for place in places:
        if (place / CELEBA_FOLDER).is_dir():
            return place / CELEBA_FOLDER
    for place in places:
        zip_path = place / CELEBA_ZIP.name
        if zip_path.is_file():
            celeba_check(zip_path)
            return _unpack(zip_path, cache if place == cache else place)
    if offline():
        looked = ", ".join(f"{p}/" for p in places)
        raise DataError(
            f"dataset 'celeba': no {CELEBA_FOLDER}/ or {CELEBA_ZIP.name} in {looked}; downloads are off "
            f"({ENV_OFFLINE}=1): put the zip (1.4 GB, from mmlab.ie.cuhk.edu.hk/projects/CelebA.html) in "
            f"<{ENV_DATA}>/celeba/, or unset {ENV_OFFLINE}"
        )
    download(CELEBA_ZIP, cache / CELEBA_ZIP.name, check=celeba_check)
    return _unpack(cache / CELEBA_ZIP.name, cache)


@register_dataset("celeba")
def celeba(
    data_dir: str | None = None,
    crop: NonNegativeInt = 108,
    size: PositiveInt = 64,
    limit: NonNegativeInt = 0,
    test_size: NonNegativeInt = 1000,
    split_seed: Seed = 0,
) -> DataSplits:
    """CelebA's aligned faces, cut and resized as carpedm20's ``--dataset celebA --input_height=108 --crop``.

    Parameters
    ----------
    crop, size : int
        The central square cut from each 178 x 218 face (108) and the side it is resized to (64).
    limit : int
        Only the first ``limit`` faces (0: all 202,599).
    test_size : int
        Faces held out.
    """
    folder = find_celeba(data_dir)
    files = list_images(folder, "*.jpg")
    files = files[:limit] if limit else files
    return _split("celeba", _cached_images(folder, files, crop, size, 3), test_size, split_seed, folder)
