"""Artifacts on disk: a crash, a kill or a full disk never leaves a truncated or mixed one.

Files (:func:`atomic_write` and the writers built on it): the content goes to a temporary
file beside the target, is flushed to disk and renamed over the target (``os.replace`` is
atomic on POSIX within one filesystem). The file gets the mode any new file gets under the
umask (0644 under umask 022). A failed write, a full disk included, raises ``OSError`` naming
the target, removes the temporary file and leaves any previous version untouched.

Directories (:func:`atomic_directory`, :func:`replace_directory`): an artifact made of several
files (a Nyström reference, a references root, a feature store) is built in a sibling
directory and swapped into place whole, so a reader sees the complete old version or the
complete new one, never a mix and, after a crash, never nothing.

Writers (:func:`exclusive_lock`): a second process writing the same artifact fails at once,
naming the holder, instead of interleaving its files with the first one's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError
from safetensors.torch import save_file


def cache_dir() -> Path:
    """Where repmatch caches what it builds (converted models, trained weights):
    ``$REPMATCH_CACHE``, else ``~/.cache/repmatch``. Never inside the repository."""
    root = os.environ.get("REPMATCH_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "repmatch"


# ---------------------------------------------------------------------------------- files

#: What a writer raises when the disk is full or the device fails: torch.save reports it as a
#: RuntimeError ("basic_ios::clear: iostream error", "unexpected pos ...") and safetensors as a
#: SafetensorError ("... (os error 28)"), neither naming the file.
_WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


def _write_error(path: Path, exc: BaseException) -> OSError:
    if isinstance(exc, OSError):
        code, reason = exc.errno, exc.strerror or str(exc)
    else:
        found = re.search(r"os error (\d+)", str(exc))
        code, reason = (int(found.group(1)) if found else None), f"{type(exc).__name__}: {exc}"
    message = f"could not write {path}: {reason}; any previous version of it is unchanged"
    return OSError(code, message) if code is not None else OSError(message)


def _temp_file(path: Path) -> tuple[str, int]:
    """A new empty file beside ``path`` and the mode the umask gives a new file."""
    # Not tempfile.mkstemp: it creates the file with mode 0600 whatever the umask, and the rename
    # keeps that mode. O_EXCL with 0666 gets the umask's mode, as open() would.
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        mode = os.fstat(fd).st_mode & 0o777
        os.close(fd)
        return str(tmp), mode


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``.

    ``path`` then holds the complete new content, or (on any failure) its previous content; a
    failed write (``OSError``, or the ``RuntimeError`` / ``SafetensorError`` that torch and
    safetensors raise for a full disk) is raised as ``OSError`` naming ``path``, with the
    original errno where known.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _temp_file(path)
    try:
        try:
            write(tmp)
            # Some writers recreate the file themselves (safetensors makes it 0600).
            if os.stat(tmp).st_mode & 0o777 != mode:
                os.chmod(tmp, mode)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except _WRITE_ERRORS as exc:
            raise _write_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON to ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Atomically save ``tensors`` (made contiguous, moved to CPU) with safetensors."""

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=dict(metadata or {})))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file ``path`` (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically ``torch.save`` ``obj`` (checkpoints: state dicts, RNG states, counters)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


# ---------------------------------------------------------------------------- directories
#
# Beside a directory artifact ``<parent>/<name>`` live, transiently:
#   .<name>.tmp.<host>.<pid>.<token>   a writer's new version (or, after a swap, the old one)
#   .<name>.old                        the old version during the fallback's two renames


def _resolve(path: str | os.PathLike[str]) -> Path:
    # Swap the directory a symlink points to, not the link: the data stays where the user put it.
    path = Path(path)
    return path.resolve() if path.is_symlink() else path


def _old_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _load_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(src: Path, dst: Path) -> bool:
    """Swap the entries ``src`` and ``dst`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``).
    ``False``, changing nothing, where ``dst`` is absent or the system or filesystem cannot."""
    if _RENAMEAT2 is None or not os.path.lexists(dst):
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOENT):
        return False
    raise OSError(code, f"could not swap {src} into {dst}: {os.strerror(code)}")


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory entry under ``root``: the swap must not become durable
    before the content it makes visible."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover_directory(path: str | os.PathLike[str]) -> None:
    """Undo a directory swap cut short between the fallback's two renames.

    Where ``path`` is missing and its previous version waits at ``.<name>.old``, it is put
    back; otherwise nothing changes. Readers call this before reporting a missing artifact.
    """
    target = _resolve(path)
    old = _old_path(target)
    if not os.path.lexists(target) and old.is_dir() and not old.is_symlink():
        # A concurrent reader or writer may get there first (ENOENT, ENOTEMPTY): that is fine.
        with contextlib.suppress(OSError):
            os.rename(old, target)


def _clean_leftovers(target: Path) -> None:
    """Recover an interrupted swap and delete what crashed writers left beside ``target``."""
    recover_directory(target)
    if os.path.lexists(target):
        shutil.rmtree(_old_path(target), ignore_errors=True)  # the swap finished; only deletion was cut short
    if not target.parent.is_dir():
        return
    prefix, host = f".{target.name}.tmp.", socket.gethostname()
    for entry in target.parent.iterdir():
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        owner, _, pid = entry.name[len(prefix):].rpartition(".")[0].rpartition(".")  # drop the token
        # Only this host's dead writers: a live one is still building, another host's is unknowable.
        if owner == host and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def replace_directory(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Put the complete directory ``src`` at ``dst`` in one step, then delete ``dst``'s old content.

    ``src`` must be on ``dst``'s filesystem (a sibling). At every instant, a crash included,
    ``dst`` is either its old content or all of ``src``: on Linux one
    ``renameat2(RENAME_EXCHANGE)`` swaps them; elsewhere (or on a filesystem without it) two
    renames move the old version to ``.<name>.old`` and ``src`` into place, and a crash
    between them is undone by :func:`recover_directory`. The old content is deleted last; if
    that is cut short, the next writer finishes it. Returns ``dst``.
    """
    source, target = Path(src), _resolve(dst)
    if os.path.lexists(target) and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory; refusing to replace it")
    _fsync_tree(source)
    previous: Path | None = source  # after an exchange, source holds the old version
    if not _exchange(source, target):
        if os.path.lexists(target):
            previous = _old_path(target)
            shutil.rmtree(previous, ignore_errors=True)  # a finished swap's leftover
            os.rename(target, previous)
        else:
            previous = None
        os.rename(source, target)
    _fsync_dir(target.parent)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return target


def check_replaceable(path: str | os.PathLike[str], replaces: str | None) -> None:
    """Raise unless :func:`atomic_directory` may replace ``path``: absent, an empty directory, or
    a directory holding ``replaces`` (any directory when ``replaces`` is ``None``). Call it
    before a long computation whose result goes to ``path``."""
    target = _resolve(path)
    if os.path.lexists(target) and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory; refusing to replace it")
    if replaces is not None and target.is_dir() and any(target.iterdir()) and not (target / replaces).exists():
        raise ValueError(
            f"{target} exists and holds no {replaces}, so it is not the artifact being written; "
            "refusing to replace it: choose another path or delete it"
        )


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, replaces: str | None = None) -> Iterator[Path]:
    """Build the directory ``path`` whole: yield a fresh sibling directory to fill, and when the
    body succeeds swap it into place with :func:`replace_directory`.

    Guarantee: ``path`` holds its previous content until the swap and all of the new content
    after it; a crash, a kill or an exception (a full disk) at any point leaves the previous
    content, and the next writer removes what the dead one left beside it. Entries of the old
    directory that the new one lacks do not survive. The new directory gets the umask's mode.

    ``replaces`` names an entry that an existing, non-empty ``path`` must hold to be replaced
    (e.g. ``"manifest.json"``): a wrong path never wipes a directory of unrelated files, it
    raises ``ValueError``. Writers of one ``path`` must not run concurrently (hold an
    :func:`exclusive_lock`): if they do, one may fail, the last swap wins, nothing is mixed.
    """
    target = _resolve(path)
    _clean_leftovers(target)
    check_replaceable(target, replaces)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}.tmp.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            tmp.mkdir()  # mode 0777 & ~umask, unlike tempfile.mkdtemp's 0700
        except FileExistsError:
            continue
        break
    try:
        yield tmp
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------- locks


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike[str], *, name: str, target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the file lock ``lock_path`` for the body: one writer of ``target`` at a time.

    A second writer fails at once with ``ValueError`` naming ``name`` (the parameter, e.g.
    ``"out_dir"``), ``target`` and the holder (pid, host and start time, read from
    ``<lock_path>.owner``). The operating system drops the lock with its process, so a crash
    never leaves a stale lock; the empty lock file itself stays.
    """
    lock_file = Path(lock_path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    owner = lock_file.with_name(lock_file.name + ".owner")
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = owner.read_text().strip() if owner.is_file() else "unknown holder"
        raise ValueError(
            f"{name} {str(target)!r} is being written by another process ({holder}); wait for it "
            f"to finish or use another {name}"
        ) from None
    try:
        atomic_write_text(owner, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
