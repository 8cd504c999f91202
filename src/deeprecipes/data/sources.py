"""Where data files come from: a data folder, the package itself, the user cache, system folders, or a download.

:func:`locate` finds every file of a dataset, checking each one it finds against its SHA-256, and downloads what is
missing into the cache as a last resort. Settings, all optional:

``DEEPRECIPES_DATA``
    A folder holding data files, as ``<folder>/<dataset>/<file>`` or ``<folder>/<file>`` (``--data-dir`` on the
    command line and the builders' ``data_dir`` argument win over it).
``DEEPRECIPES_CACHE``
    Where downloads go; default ``$XDG_CACHE_HOME/deeprecipes`` or ``~/.cache/deeprecipes``.
``DEEPRECIPES_OFFLINE=1``
    Never download (tests set it so they never touch the network).
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import cache_dir, env_path, file_mode
from .idx import read_idx

__all__ = ["FileSpec", "cache_dir", "data_dir", "download", "load_verified", "locate", "offline"]

log = logging.getLogger(__name__)

ENV_DATA = "DEEPRECIPES_DATA"
ENV_OFFLINE = "DEEPRECIPES_OFFLINE"
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a mirror is given up


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Attributes
    ----------
    name : str
        File name, e.g. ``"train-images-idx3-ubyte.gz"``.
    sha256 : str or None
        SHA-256 (hex) of the *decompressed* content; None skips the check (for user-defined datasets).
    urls : tuple of str
        Full download URLs, tried in order.
    """

    name: str
    sha256: str | None = None
    urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))

    @classmethod
    def from_mirrors(cls, name: str, sha256: str | None, mirrors: Iterable[str]) -> FileSpec:
        """A spec whose URLs are ``<mirror>/<name>`` for each mirror base URL."""
        return cls(name, sha256, tuple(m.rstrip("/") + "/" + name for m in mirrors))


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The user's data folder: ``explicit`` when given, else ``$DEEPRECIPES_DATA``, else None."""
    if explicit is not None and os.fspath(explicit) != "":
        return Path(explicit).expanduser()
    return env_path(ENV_DATA)


_data_dir = data_dir  # locate() has an argument of the same name


def offline() -> bool:
    """True when ``DEEPRECIPES_OFFLINE`` is set to 1, true, yes or on."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


_CACHE_SIZE = 8  # decoded files kept (MNIST and Fashion-MNIST have four each)
_decoded: OrderedDict[tuple[str, int, int, str | None], np.ndarray] = OrderedDict()
_decoded_lock = threading.Lock()


def load_verified(path: str | os.PathLike[str], sha256: str | None = None) -> np.ndarray:
    """:func:`read_idx` with an in-process cache, so each unchanged file is decoded and checked only once.

    The cache is keyed on the resolved path, size, modification time and expected checksum, so a file that
    changes on disk is read again.

    Parameters
    ----------
    path : str or path-like
    sha256 : str, optional
        Expected SHA-256 of the decompressed content.

    Returns
    -------
    ndarray
        Read-only (shared by every caller): copy it before changing it.
    """
    try:
        resolved = Path(path).resolve()
        st = resolved.stat()
    except OSError:
        return read_idx(path, sha256=sha256)  # raises with the reason
    key = (os.fspath(resolved), st.st_size, st.st_mtime_ns, sha256)
    with _decoded_lock:
        if key in _decoded:
            _decoded.move_to_end(key)
            return _decoded[key]
    arr = read_idx(path, sha256=sha256)
    arr.flags.writeable = False
    with _decoded_lock:
        _decoded[key] = arr
        while len(_decoded) > _CACHE_SIZE:
            _decoded.popitem(last=False)
    return arr


def download(
    spec: FileSpec,
    dest: Path,
    unreachable: set[str] | None = None,
    check: Callable[[Path], object] | None = None,
) -> None:
    """Download ``spec`` to ``dest``, trying each URL in turn; nothing is left at ``dest`` unless it verified.

    Each attempt writes to a temporary file beside ``dest``, checks it (``check(path)``, which raises
    :class:`DataError`; by default :func:`read_idx`: format and checksum) and then moves it into place with
    :func:`os.replace`, so a failed or interrupted download never leaves a half-written file.

    Parameters
    ----------
    spec : FileSpec
    dest : Path
        Final location (its folder is created).
    unreachable : set of str, optional
        Hosts that could not be reached; they are skipped, and hosts that fail to connect are added (so a
        machine without internet gives up after one timeout, not one per file and mirror).

    Raises
    ------
    DataError
        Every URL failed (the message gives each one's reason), or there are no URLs.
    """
    if not spec.urls:
        raise DataError(f"{spec.name}: no download URL known")
    unreachable = set() if unreachable is None else unreachable
    reasons = []
    for url in spec.urls:
        host = urllib.parse.urlsplit(url).netloc
        if host and host in unreachable:
            reasons.append(f"{url}: skipped, {host} unreachable")
            continue
        tmp: Path | None = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            tmp = Path(name)
            os.chmod(tmp, file_mode())
            log.info("downloading %s", url)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                shutil.copyfileobj(response, out, 1 << 20)
            try:
                check(tmp) if check is not None else read_idx(tmp, sha256=spec.sha256)
            except DataError as e:  # name the URL, not the temporary file
                raise DataError(str(e).replace(str(tmp), url, 1)) from None
            os.replace(tmp, dest)
            tmp = None
            log.info("saved %s", dest)
            return
        except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, timeouts, DataError, bad URL
            reason = str(e) if isinstance(e, DataError) else f"{url}: {e}"
            log.warning("download failed: %s", reason)
            reasons.append(reason)
            connect_failed = isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError)
            if host and (connect_failed or isinstance(e, TimeoutError)):
                unreachable.add(host)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    raise DataError(f"downloading {spec.name} failed: {'; '.join(reasons)}")


def _shown(folder: Path) -> str:
    return f"{folder}/" if folder.is_dir() else f"{folder}/ (no such folder)"


def locate(
    dataset: str,
    files: Sequence[FileSpec],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    shipped: Path | None = None,
    system_dirs: tuple[Path, ...] = (),
) -> dict[str, Path]:
    """Find the files of ``dataset``, downloading the missing ones into the cache.

    Each file is looked for, in order, in

    1. the data folder (``data_dir``, else ``$DEEPRECIPES_DATA``): ``<dir>/<dataset>/<file>``, then ``<dir>/<file>``;
    2. ``shipped``, the folder shipped inside the package (if any);
    3. the user cache, ``<cache>/<dataset>/<file>``;
    4. each of ``system_dirs`` (e.g. Debian's ``/usr/share/datasets/fashion-mnist``);
    5. the file's URLs, downloaded into the cache (unless ``DEEPRECIPES_OFFLINE=1``).

    Every file found is checked (IDX format and SHA-256), once per process. A bad file is an error naming it,
    except in the cache, where it is deleted and downloaded again.

    Parameters
    ----------
    dataset : str
        Dataset name, also the sub-folder name in data and cache folders.
    files : sequence of FileSpec
    data_dir : str or path-like, optional
        Explicit data folder (overrides ``$DEEPRECIPES_DATA``).
    shipped : Path, optional
        Folder of files shipped with the package.
    system_dirs : tuple of Path
        System-wide folders holding the files directly.

    Returns
    -------
    dict
        File name -> path of a verified file.

    Raises
    ------
    DataError
        A file found is corrupt, or some files are nowhere and could not be downloaded: one line naming them, every
        place looked and how to provide them.
    """
    user = _data_dir(data_dir)
    cache = cache_dir() / dataset
    folders = _search_folders(dataset, user, shipped, system_dirs, cache)
    found: dict[str, Path] = {}
    for spec in files:
        path = _find_local(dataset, spec, folders)
        if path is not None:
            found[spec.name] = path
    missing = [spec for spec in files if spec.name not in found]
    failures: list[str] = []
    if missing and not offline():
        failures = _download_missing(missing, cache, found)
        missing = [spec for spec in missing if spec.name not in found]
    if missing:
        raise DataError(_missing_message(dataset, missing, folders, user is not None, failures))
    return {spec.name: found[spec.name] for spec in files}


def _search_folders(
    dataset: str, user: Path | None, shipped: Path | None, system_dirs: tuple[Path, ...], cache: Path
) -> list[tuple[Path, bool]]:
    """The folders :func:`locate` looks in, in order, each with whether it is the cache."""
    folders: list[tuple[Path, bool]] = []
    if user is not None:
        folders += [(user / dataset, False), (user, False)]
    if shipped is not None:
        folders.append((Path(shipped), False))
    folders.append((cache, True))
    folders += [(Path(d), False) for d in system_dirs]
    return folders


def _find_local(dataset: str, spec: FileSpec, folders: list[tuple[Path, bool]]) -> Path | None:
    """The first verified copy of ``spec`` in ``folders``; a bad one is an error, except in the cache, where it is
    deleted (to be downloaded again)."""
    for folder, is_cache in folders:
        path = folder / spec.name
        if path.is_dir() and not is_cache:  # a folder where the file should be: never passed over in silence
            raise DataError(f"{path} is a folder; {dataset} needs the file {spec.name} there (or nothing of that name)")
        if not path.is_file():
            continue
        try:
            load_verified(path, spec.sha256)
        except DataError as e:
            if not is_cache:
                raise
            log.warning("removing a bad cache entry: %s", e)
            path.unlink(missing_ok=True)
            continue
        log.debug("%s: %s", dataset, path)
        return path
    return None


def _download_missing(missing: list[FileSpec], cache: Path, found: dict[str, Path]) -> list[str]:
    """Download each missing file into ``cache``, adding those that arrive to ``found``; the failures' reasons."""
    failures: list[str] = []
    unreachable: set[str] = set()
    for spec in missing:
        try:
            download(spec, cache / spec.name, unreachable)
        except DataError as e:
            failures.append(str(e))
            continue
        found[spec.name] = cache / spec.name
    return failures


def _missing_message(
    dataset: str, missing: list[FileSpec], folders: list[tuple[Path, bool]], has_user: bool, failures: list[str]
) -> str:
    """One line: which files are missing, every place looked, why no download helped, and how to provide them."""
    names = ", ".join(s.name for s in missing)
    looked = ", ".join(_shown(folder) for folder, _ in folders)
    if not has_user:
        looked += f"; no data folder given (--data-dir or {ENV_DATA})"
    provide = f"set {ENV_DATA} or --data-dir to a folder holding the files"
    if offline():
        tried, fix = f"downloads are off ({ENV_OFFLINE}=1)", f"{provide}, or unset {ENV_OFFLINE} and connect"
    elif failures:
        more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
        tried, fix = f"{failures[0]}{more}", f"{provide}, or connect"
    else:
        tried, fix = "no download URL is known", provide
    if fix != provide:
        fix += " to the internet"
    message = f"dataset '{dataset}': missing {names}; looked in {looked}; {tried}; {fix}"
    return message.replace("\r", " ").replace("\n", " ")
