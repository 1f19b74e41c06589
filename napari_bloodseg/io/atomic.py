"""Atomic file writes: a crash or cancel never leaves a half-written mask or model behind."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    Refuses to replace an existing file unless ``overwrite`` is true, so nothing is lost silently.
    """
    target = Path(target)
    with _temporary(target, overwrite=overwrite) as tmp:
        yield tmp
        _final_mode(tmp)  # a writer that replaces the file (safetensors does) made it 0600 like mkstemp
        os.replace(tmp, target)


def atomic_write(target: str | Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    with atomic_path(target, overwrite=overwrite) as tmp:
        write(tmp)
    return Path(target)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM (main thread) while a few renames commit; they arrive right after.

    A model is two files: an interrupt between their renames left new weights beside the old card, and neither
    model loaded. Python runs signal handlers in the main thread whichever thread the signal reached (torch and Qt
    have threads of their own), so the handlers are swapped for a recorder rather than the signals masked."""
    if threading.current_thread() is not threading.main_thread():
        yield  # worker threads (napari) are stopped by their cancel flag, never by a signal
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:  # None: installed outside Python, which could not be put back
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in pending:
            signal.raise_signal(sig)  # now, to the handler that was there


def atomic_write_group(
    files: Sequence[tuple[str | Path, Callable[[Path], None]]],
    *,
    overwrite: bool = False,
    moves: Sequence[tuple[Path, Path]] = (),
    remove: Sequence[Path] = (),
) -> list[Path]:
    """Write several files that only make sense together (a model's weights and card) all or nothing.

    Every file is written in full under a temporary name first, so a full disk or an error leaves the old files
    as they were; then, with interrupts held back (:func:`signals_held`), ``moves`` are renamed, the files are
    renamed into place in order (the last one, e.g. the card, makes the group visible) and ``remove`` is deleted.
    """
    with contextlib.ExitStack() as stack:
        temps = []
        for target, write in files:
            tmp = stack.enter_context(_temporary(Path(target), overwrite=overwrite))
            write(tmp)
            _final_mode(tmp)
            temps.append((tmp, Path(target)))
        with signals_held():
            for src, dst in moves:
                os.replace(src, dst)
            placed: list[Path] = []
            for tmp, target in temps:
                try:
                    _place(tmp, target, overwrite=overwrite)
                except FileExistsError:  # another process took the name since the check: its files stay
                    for p in placed:
                        p.unlink(missing_ok=True)
                    raise
                placed.append(target)
            for path in remove:
                Path(path).unlink(missing_ok=True)
    return [target for _, target in temps]


def _place(tmp: Path, target: Path, *, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``target``; without ``overwrite`` never over a file that appeared after the first check
    (two fine-tunes saving one name: the later rename silently replaced the first model). A hard link fails when
    the name exists, where a rename would replace it; on a disk without hard links, check and rename."""
    if overwrite:
        os.replace(tmp, target)
        return
    taken = FileExistsError(f"{target} was created by another program meanwhile; nothing was replaced")
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise taken from None
    except OSError:  # no hard links here (FAT, some network disks)
        if target.exists():
            raise taken from None
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextlib.contextmanager
def _temporary(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temporary file beside ``target`` (hidden: listings skip it), removed unless renamed away."""
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        if tmp.exists():
            tmp.unlink()


def _final_mode(path: Path) -> None:
    """The permissions a plain new file gets (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def check_can_write_in(folder: str | Path) -> None:
    """Raise now (NotADirectoryError, PermissionError) if files cannot be created in ``folder`` (made if missing),
    rather than after the minutes of work whose result would go there."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        if _read_only_mount(existing):  # not a matter of permissions: no chmod or other user will help
            exc = OSError(f"{existing} is on a read-only file system")
            exc.errno = errno.EROFS
            raise exc
        raise PermissionError(f"no permission to write in {existing}")


def _read_only_mount(path: Path) -> bool:
    """Whether ``path`` lies on a file system mounted read-only (POSIX; False where that cannot be asked)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # Windows has no statvfs
        return False
