"""One writer per output: OUT_DIR/_hybridocr.lock names the run that writes OUT_DIR.

A second run on the same OUT_DIR is refused at once with a message naming the first (host, pid,
command, since when). The holder rewrites its heartbeat every HEARTBEAT seconds; a lock whose
process is gone (same host) or whose heartbeat is older than STALE seconds (any host: a crashed
run on another node) is taken over, so a crashed run never blocks OUT_DIR for long.

Local directories use an exclusive create (atomic). Object stores have no exclusive create in
pyarrow.fs: there the lock is written, then read back after a pause to check that it is ours
(two runs starting within that pause on one bucket prefix can still collide; documented).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

import pyarrow.fs as pafs

log = logging.getLogger(__name__)
HEARTBEAT = 10.0
STALE = 60.0
LOCK_NAME = "_hybridocr.lock"


class OutputLocked(RuntimeError):
    """OUT_DIR is being written by another run; the message names it and says what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, fs: pafs.FileSystem, root: str, location: str, command: str = ""):
        self.fs, self.path, self.location = fs, f"{root}/{LOCK_NAME}", location
        self.local = isinstance(fs, pafs.LocalFileSystem)
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
                   "command": command[:300], "started": time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading and writing the lock file
    def _read(self) -> dict | None:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return json.loads(f.read().decode())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # half written, or not ours: treat as stale unless it is fresh
            info = self.fs.get_file_info(self.path)
            if info.type == pafs.FileType.NotFound:
                return None
            mtime = info.mtime.timestamp() if info.mtime else 0.0
            return {"host": "?", "pid": -1, "token": "?", "command": "?", "started": mtime, "heartbeat": mtime}

    def _write(self) -> None:
        data = json.dumps({**self.me, "heartbeat": time.time()}).encode()
        if self.local:
            tmp = f"{self.path}.{self.me['token']}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        else:
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)

    def _stale(self, holder: dict) -> str | None:
        """Why the holder's lock may be taken over, or None while it is live."""
        age = time.time() - float(holder.get("heartbeat", 0))
        if holder.get("host") == self.me["host"] and isinstance(holder.get("pid"), int) and holder["pid"] > 0 \
                and not _alive(holder["pid"]):
            return f"its process {holder['pid']} on this host is gone"
        if age > STALE:
            return f"its heartbeat is {age:.0f} s old (> {STALE:.0f} s)"
        return None

    def _refusal(self, holder: dict) -> OutputLocked:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0))))
        age = time.time() - float(holder.get("heartbeat", 0))
        return OutputLocked(
            f"{self.location} is being written by another run (host {holder.get('host')}, pid {holder.get('pid')}, "
            f"since {since}, heartbeat {age:.0f} s ago: {holder.get('command') or '?'}). Wait for it to finish, or "
            f"write to another --out. A crashed run's lock is taken over {STALE:.0f} s after its last heartbeat "
            f"(at once on the same host); to free it by hand, delete {self.location.rstrip('/')}/{LOCK_NAME}")

    # -- the lifecycle
    def acquire(self) -> "RunLock":
        self.fs.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        for _ in range(3):
            if self.local:
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    os.close(fd)
                    self._write()
                    break
                except FileExistsError:
                    pass
            holder = self._read()
            if holder is None:
                if self.local:
                    continue  # released between our two looks: try the exclusive create again
                self._write()
            else:
                why = self._stale(holder)
                if why is None:
                    raise self._refusal(holder)
                log.warning("taking over the lock of %s: %s", self.location, why)
                self._write()
            time.sleep(0.5 if self.local else 1.0)  # let a concurrent taker's write land, then check who won
            current = self._read()
            if current and current.get("token") == self.me["token"]:
                break
            if current:
                raise self._refusal(current)
        else:
            raise OutputLocked(f"could not take the lock of {self.location}; retry")
        self._thread = threading.Thread(target=self._beat, daemon=True, name="hybridocr-lock")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                current = self._read()
                if current and current.get("token") != self.me["token"]:
                    log.error("the lock of %s was taken over by pid %s on %s; this run's rows may be doubled: "
                              "rerun once both have ended (a rerun removes duplicates)", self.location,
                              current.get("pid"), current.get("host"))
                    return
                self._write()
            except OSError as e:  # a missed beat is not fatal; STALE allows several
                log.warning("could not refresh the lock of %s: %s", self.location, e)

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        current = self._read()
        if current and current.get("token") == self.me["token"]:
            try:
                self.fs.delete_file(self.path)
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
