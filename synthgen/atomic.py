"""Writes that never leave a half-written file or folder behind (temp beside the target + rename)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from synthgen.errors import InputError


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder and ``os.replace``: never a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def staging_dir(dest: Path, tag: str = "partial") -> Path:
    """A hidden empty folder beside ``dest`` (same filesystem: the final rename is atomic), with the
    permissions of an ordinary new folder (mkdtemp alone makes it private to the user)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{tag}-", dir=dest.parent))
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    return tmp


def swap_in_dir(new: Path, dest: Path) -> None:
    """Rename the finished folder ``new`` onto ``dest``; an existing ``dest`` is removed only afterwards."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- Locks and stale staging folders -----------------------------------------------------------
#
# A run that writes ``dest`` holds ``.NAME.lock`` beside it (fcntl.flock, released by the kernel when
# the process ends, however it ends), so a second run into the same destination fails at once. Its
# staging folder holds ``.owner``, flocked the same way for the life of the run: a staging folder
# whose ``.owner`` can be locked by someone else belongs to a dead run (killed with -9, power loss)
# and is removed by the next run. Folders without ``.owner`` (older versions, other tools) are never
# touched: nothing proves that their writer is dead.

OWNER_FILE = ".owner"


def os_reason(e: OSError) -> str:
    """'permission denied', 'read-only file system', ...: the OS's reason, for one error line."""
    reason = e.strerror or str(e)
    return reason[:1].lower() + reason[1:]


def _lock_error(e: OSError, dest: Path) -> InputError:
    return InputError(f"cannot write the output here: {os_reason(e)}", dest.parent if dest.parent != Path() else dest)


@contextlib.contextmanager
def output_lock(dest: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold the write lock of ``dest`` for the block (the lock file is removed at the end).

    InputError at once when another live process holds it, or when the folder that holds ``dest``
    cannot be written (read-only, no permission)."""
    dest = Path(dest)
    lock_path = dest.parent / f".{dest.name}.lock"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise InputError(
                    f"another run{who} is writing this output right now; wait for it to finish or choose another {option}",
                    dest,
                ) from None
            # A holder that finished between our open and flock removed the file we locked: retry.
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:
        raise _lock_error(e, dest) from None
    try:
        yield lock_path
    finally:
        Path(lock_path).unlink(missing_ok=True)  # still ours: removed while held
        os.close(fd)


class OwnedStaging:
    """A staging folder (see ``staging_dir``) with a flocked ``.owner`` file proving that its run lives."""

    def __init__(self, dest: str | Path, tag: str = "partial"):
        dest = Path(dest)
        self.path = None
        try:
            self.path = staging_dir(dest, tag)
            # locked under a temporary name, then renamed: ``.owner`` is never seen unlocked
            tmp = self.path / f"{OWNER_FILE}.tmp"
            self._fd: int | None = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(self._fd, f"{os.getpid()}\n".encode())
            os.replace(tmp, self.path / OWNER_FILE)
        except OSError as e:
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
            raise _lock_error(e, dest) from None

    def release(self) -> None:
        """Drop ``.owner`` (call just before renaming the finished folder into place)."""
        if self._fd is not None:
            (self.path / OWNER_FILE).unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Remove the folder (a failed or interrupted run)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()


def run_is_dead(staging: Path) -> bool:
    """True only when ``staging`` has an ``.owner`` file that no live process holds."""
    try:
        fd = os.open(staging / OWNER_FILE, os.O_RDWR)
    except OSError:
        return False  # no owner file (or unreadable): nothing proves the writer is dead
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the probe's lock


def remove_dead_staging(dest: str | Path, tag: str = "partial") -> list[Path]:
    """Remove the ``.NAME.TAG-*`` staging folders beside ``dest`` left by dead runs; returns them."""
    dest = Path(dest)
    prefix = f".{dest.name}.{tag}-"
    removed = []
    try:
        entries = [p for p in dest.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for p in sorted(entries):
        if p.is_dir() and not p.is_symlink() and run_is_dead(p):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
