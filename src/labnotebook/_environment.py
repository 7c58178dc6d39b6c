"""Code and environment capture: what a run needs to be reproduced, read at start.

:func:`capture` returns the dict stored as ``runs.environment``:

- ``code``: the script and its command line (or the notebook), and the git commit,
  branch, remote (credentials removed), dirty flag, untracked file names and the
  uncommitted diff (capped at ``max_diff_size`` bytes);
- ``python``, ``platform``: interpreter and operating system;
- ``packages``: installed distributions, canonical name to version, sorted;
- ``host``: host name, CPU model and count, RAM and NVIDIA GPUs.

Capture never fails a run: a part that cannot be read is recorded as an ``error``
string in its section. Git runs without a shell, with a timeout, and without
taking the repository's optional locks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import socket
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._threads import start_thread
from ._values import dump_json

logger = logging.getLogger(__name__)

#: Largest environment, in bytes of JSON; the diff is cut further to fit.
MAX_ENVIRONMENT_BYTES = 2_000_000
#: Most installed packages listed (sorted by name; the rest are counted).
MAX_PACKAGES = 5_000
#: Most untracked file names listed.
MAX_UNTRACKED = 1_000
#: Most command-line arguments kept, and the longest argument kept whole.
MAX_ARGS = 1_000
MAX_ARG_LENGTH = 10_000
#: Seconds any one git command may take.
GIT_TIMEOUT = 2.0
#: Seconds start() waits for the list of installed packages.
PACKAGES_TIMEOUT = 10.0

_DIST_FOLDER = re.compile(r"^([^-]+)-([^-]+?)(?:-py\d[^-]*)?\.(?:dist|egg)-info$")
_host_cache: dict[str, Any] = {}
_host_lock = threading.Lock()


def capture(*, code: bool, environment: bool, max_diff_size: int) -> dict[str, Any]:
    """The code and environment of this process, as plain JSON data.

    code: record the script, command line and git state.
    environment: record Python, platform, packages and hardware.
    max_diff_size: most bytes of uncommitted diff kept.
    """
    out: dict[str, Any] = {}
    packages: list[Any] = []
    reader: threading.Thread | None = None
    if environment:
        # Reading package versions overlaps with the git commands.
        reader = start_thread(
            lambda: packages.append(_guard(_packages)), name="labnotebook-packages"
        )
    if code:
        out["code"] = _guard(lambda: _code(max_diff_size))
    if environment:
        out["python"] = _guard(_python)
        out["platform"] = _guard(_platform)
        out["host"] = _guard(_host)
        assert reader is not None
        # Bounded: a start() never hangs on reading metadata (in a forked child, a
        # lock its parent held at the fork would otherwise stop it for good).
        reader.join(PACKAGES_TIMEOUT)
        found: dict[str, Any] = (
            packages[0]
            if packages
            else {"error": f"reading the packages took over {PACKAGES_TIMEOUT:g} s"}
        )
        if "error" in found:
            out["packages"] = {}
            out["packages_error"] = found["error"]
        else:
            out["packages"], total = found["packages"], found["total"]
            if total > len(out["packages"]):
                out["packages_truncated"] = total
    return _fit(out)


def strip_credentials(url: str) -> str:
    """A remote URL without secrets.

    http(s): user name, password or token, query and fragment are removed. Other
    schemes (``ssh://``): the password is removed, the user name kept. scp-like
    ``git@host:path`` and local paths are kept as they are.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if parts.scheme in ("http", "https"):
        return urlunsplit((parts.scheme, hostport, parts.path, "", ""))
    if parts.scheme and at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}@{hostport}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return url


# ------------------------------------------------------------------ code


def _code(max_diff_size: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    notebook = _notebook()
    script: str | None = None
    if notebook is None:
        first = sys.argv[0] if sys.argv else ""
        if first and os.path.isfile(first):
            script = os.path.abspath(first)
    out["script"] = _text(script) if script else None
    out["argv"] = [_text(a[:MAX_ARG_LENGTH]) for a in sys.argv[:MAX_ARGS]]
    if len(sys.argv) > MAX_ARGS:
        out["argv_truncated"] = len(sys.argv)
    out["notebook"] = notebook

    try:
        if script:
            where = os.path.dirname(script)
        elif notebook and notebook.get("path") and os.path.isabs(notebook["path"]):
            where = os.path.dirname(notebook["path"])
        else:
            try:
                where = os.getcwd()
            except OSError as exc:  # the folder was deleted while the process ran
                raise RuntimeError(
                    f"the current folder cannot be read ({exc.strerror}); not recorded"
                ) from None
        out.update(_git(where, max_diff_size))
    except Exception as exc:
        out["error"] = _text(f"git: {exc}")
    return out


def _notebook() -> dict[str, Any] | None:
    """The notebook's path and kernel when running in IPython, else None."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return None
    if shell is None:
        return None
    path = os.environ.get("JPY_SESSION_NAME") or shell.user_ns.get("__vsc_ipynb_file__")
    kernel: str | None = None
    if "ipykernel" in sys.modules:
        try:
            from ipykernel import get_connection_file

            kernel = os.path.basename(get_connection_file())
        except Exception:
            kernel = None
    return {
        "path": _text(str(path)) if path else None,
        "kernel": kernel,
        "shell": type(shell).__name__,
    }


def _git(where: str, max_diff_size: int) -> dict[str, Any]:
    # The remote is read while git status runs.
    remote: list[Any] = []
    reader = start_thread(
        lambda: remote.append(_guard(lambda: {"url": _remote(where)})),
        name="labnotebook-git-remote",
    )
    status = _run_git(
        where,
        ["status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z"],
    )
    reader.join(2 * GIT_TIMEOUT)
    if not remote:
        remote.append({"error": f"took over {2 * GIT_TIMEOUT:g} s"})
    if status is None:
        return {}
    commit: str | None = None
    branch: str | None = None
    changed = False
    untracked: list[str] = []
    for entry in status.split(b"\0"):
        if entry.startswith(b"# branch.oid "):
            oid = entry[13:].decode("ascii", "replace")
            commit = None if oid == "(initial)" else oid
        elif entry.startswith(b"# branch.head "):
            head = entry[14:].decode("utf-8", "replace")
            branch = None if head == "(detached)" else head
        elif entry.startswith(b"? "):
            untracked.append(_decode(entry[2:]))
        elif entry[:2] in (b"1 ", b"2 ", b"u "):
            changed = True

    out: dict[str, Any] = {
        "commit": commit,
        "branch": branch,
        "remote": remote[0].get("url"),
        "dirty": changed or bool(untracked),
        "untracked": untracked[:MAX_UNTRACKED],
        "diff": "",
        "diff_truncated": False,
    }
    if len(untracked) > MAX_UNTRACKED:
        out["untracked_truncated"] = len(untracked)
    if "error" in remote[0]:
        out["error"] = f"git remote: {remote[0]['error']}"
    if changed and commit is not None:
        diff, truncated = _read_git(
            where,
            ["diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv"],
            max_diff_size,
        )
        out["diff"] = _cut(diff, max_diff_size)
        out["diff_truncated"] = truncated
    return out


def _remote(where: str) -> str | None:
    found = _run_git(where, ["config", "--get-regexp", r"^remote\..*\.url$"])
    if not found:
        return None
    urls: dict[str, str] = {}
    for line in _decode(found).splitlines():
        key, _, url = line.partition(" ")
        urls[key[len("remote.") : -len(".url")]] = url
    chosen = urls.get("origin") or next(iter(urls.values()), None)
    return strip_credentials(chosen) if chosen else None


def _run_git(where: str, args: list[str]) -> bytes | None:
    """Output of one git command; None when ``where`` is not in a repository."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=where,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise RuntimeError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"git {args[0]} took longer than {GIT_TIMEOUT} s; not recorded"
        ) from None
    if done.returncode != 0:
        message = _decode(done.stderr).strip()
        if "not a git repository" in message.lower():
            return None
        if args[0] == "config" and done.returncode == 1:
            return b""
        raise RuntimeError(f"git {args[0]} failed ({done.returncode}): {message[:500]}")
    return done.stdout


def _read_git(where: str, args: list[str], limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a git command's output, and whether it had more."""
    proc = subprocess.Popen(
        ["git", "--no-optional-locks", *args],
        cwd=where,
        env=_git_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    timer = threading.Timer(GIT_TIMEOUT, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        data = proc.stdout.read(limit + 1)
        more = len(data) > limit
        if more:
            proc.kill()
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    if not more and code != 0:
        raise RuntimeError(
            f"git {args[0]} failed ({code}) or took longer than {GIT_TIMEOUT} s"
        )
    return data[:limit], more


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_PAGER": "cat",
        }
    )
    return env


def _cut(data: bytes, limit: int) -> str:
    """Text of at most ``limit`` bytes of ``data``, ending at a whole line if cut."""
    if len(data) > limit:
        data = data[:limit]
    end = data.rfind(b"\n")
    if len(data) == limit and end >= 0:
        data = data[: end + 1]
    return _decode(data)


# ------------------------------------------------------------------ environment


def _python() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": _text(sys.executable),
        "prefix": _text(sys.prefix),
    }


def _platform() -> dict[str, Any]:
    uname = platform.uname()
    out: dict[str, Any] = {
        "system": uname.system,
        "release": uname.release,
        "machine": uname.machine,
        "platform": platform.platform(),
    }
    if uname.system == "Linux":
        with contextlib.suppress(OSError, AttributeError):
            out["distribution"] = platform.freedesktop_os_release().get("PRETTY_NAME")
    return out


def _packages() -> dict[str, Any]:
    # Read at every start (a few ms), so packages installed since are listed.
    packages, total = _read_packages()
    return {"packages": packages, "total": total}


def _read_packages() -> tuple[dict[str, str], int]:
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        # The version is in the .dist-info folder's name; reading it from
        # there skips parsing each package's metadata file (10x faster).
        folder = getattr(dist, "_path", None)
        match = _DIST_FOLDER.match(folder.name) if folder is not None else None
        if match:
            name, version = match.group(1), match.group(2)
        else:
            try:
                name, version = dist.metadata["Name"], dist.version
            except Exception as exc:
                logger.debug("unreadable package metadata in %s: %s", folder, exc)
                continue
        if not name or not version:
            continue
        name = re.sub(r"[-_.]+", "-", name).lower()
        found.setdefault(_text(name), _text(version))
    names = sorted(found)
    return {n: found[n] for n in names[:MAX_PACKAGES]}, len(names)


def prefetch() -> None:
    """Read the hardware in a background thread, so the first start need not."""
    start_thread(_guard, args=(_host,), name="labnotebook-hardware")


def _host() -> dict[str, Any]:
    # Hardware does not change while a process runs: read it once.
    with _host_lock:
        if not _host_cache:
            _host_cache.update(_read_host())
    out = dict(_host_cache)
    out["hostname"] = socket.gethostname()
    return out


def _read_host() -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": _cpu_model(), "cpu_count": os.cpu_count()}
    try:
        import psutil

        out["ram"] = psutil.virtual_memory().total
    except Exception as exc:
        out["error"] = _text(f"ram: {exc}")
    gpus = _gpus()
    if gpus:
        out["gpus"] = gpus
    return out


def _cpu_model() -> str | None:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    name, _, value = line.partition(":")
                    if name.strip() in ("model name", "Hardware", "cpu model"):
                        return value.strip() or None
        except OSError:
            pass
    return platform.processor() or None


def _gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs through NVML; empty without the library, a driver or a GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        driver = _str(pynvml.nvmlSystemGetDriverVersion())
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            out.append(
                {
                    "index": i,
                    "name": _str(pynvml.nvmlDeviceGetName(handle)),
                    "memory": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    "driver": driver,
                }
            )
        return out
    except Exception as exc:
        logger.debug("could not read GPUs through NVML: %s", exc)
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


# ------------------------------------------------------------------ helpers


def _fit(out: dict[str, Any]) -> dict[str, Any]:
    """Cut the diff until the whole environment is within MAX_ENVIRONMENT_BYTES."""
    code = out.get("code")
    for _ in range(8):
        over = len(dump_json(out).encode("utf-8")) - MAX_ENVIRONMENT_BYTES
        if over <= 0 or not isinstance(code, dict):
            return out
        diff = (code.get("diff") or "").encode("utf-8")
        if diff:
            code["diff"] = _cut(diff, max(0, len(diff) - over - 4096))
            code["diff_truncated"] = True
        else:
            # Left with the first 10 of each, and their totals said, as for the
            # caps at capture.
            for key in ("argv", "untracked"):
                kept = code.get(key) or []
                if len(kept) > 10:
                    code[key] = kept[:10]
                    code.setdefault(f"{key}_truncated", len(kept))
    return out


def _guard(read: Any) -> dict[str, Any]:
    """Call ``read``; an error becomes ``{"error": ...}`` instead of failing the run."""
    try:
        result: dict[str, Any] = read()
    except Exception as exc:
        logger.debug("environment capture failed", exc_info=True)
        return {"error": _text(f"{type(exc).__name__}: {exc}")}
    return result


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\x00", "\\x00")


def _text(value: str) -> str:
    """Text that any store takes: lone surrogates escaped, no NUL."""
    return (
        value.encode("utf-8", "backslashreplace")
        .decode("utf-8")
        .replace("\x00", "\\x00")
    )


def _str(value: object) -> str:
    return _decode(value) if isinstance(value, bytes) else _text(str(value))
