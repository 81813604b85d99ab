"""`ray job submit` as README shows it, against a real `ray start --head`, under Ray 2.60's token auth.

What a user gets by default, and so what this test sets up:
- `ray start --head` turns token auth on by itself when it finds a token (RAY_AUTH_TOKEN,
  RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token). One is there after `ray get-auth-token --generate`
  or after any earlier local `ray.init()` (a plain `hybridocr run`), which writes ~/.ray/auth_token.
  The head here gets a HOME of its own, `ray get-auth-token --generate` there, then
  `ray start --head` with RAY_AUTH_MODE unset: its log says "Token authentication is enabled".
- The `ray` CLI on the submitting side sends the token only when RAY_AUTH_MODE=token is set; with
  it unset, `ray job submit` fails with "AuthenticationError ... Missing authentication token",
  even when ~/.ray/auth_token holds the right token. So the README step is
  `export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$(ssh HEAD ray get-auth-token)`.
- Another node joins only with RAY_AUTH_MODE=token and the same token (`ray start --address`
  does not turn token auth on by itself).

Isolation from other Rays on this machine: its own temp dir (short: Unix socket paths), free ports
for every listener Ray lets us choose (the dashboard's internal gRPC port is random), worker ports
from the OS (`--min-worker-port 0 --max-worker-port 0`), and a HOME of its own so the shared
~/.ray/auth_token is neither read nor written. It never runs `ray stop` (that would stop every Ray
of this user): it ends the `ray start --block` processes it started, then their process groups,
then any process left that names its temp dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.conftest import free_ports

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: ray, hybridocr
RAY = str(BIN / "ray")
PAGE = REPO / "samples" / "table.jpg"

pytestmark = pytest.mark.timeout(600)


def _base_env(home: Path) -> dict:
    """The environment of a user with this HOME: no RAY_* variable (no RAY_ADDRESS, no RAY_AUTH_MODE)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", RAY_USAGE_STATS_ENABLED="0")
    return env


def _node_ports() -> list[str]:
    p = free_ports(6)
    return ["--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
            "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
            "--metrics-export-port", str(p[4]), "--runtime-env-agent-port", str(p[5]),
            "--min-worker-port", "0", "--max-worker-port", "0"]


class SlowAgent(Exception):
    """The raylet gave up waiting for its dashboard agent's port file (ray-project/ray#65983): on a
    busy machine the agent can take longer to start than the raylet's fixed wait; a retry helps."""


def start_node(args: list[str], env: dict, root: Path, name: str, tries: int = 3) -> Node:
    """`ray start ARGS --temp-dir ROOT/NAME-i`, retried when the raylet crashed for a slow agent."""
    for i in range(tries):
        temp = root / f"{name}-{i}"
        node = Node([*args, "--temp-dir", str(temp)], env, root / f"{name}-{i}.log", str(temp))
        try:
            node.wait_started()
            return node
        except SlowAgent as e:
            node.stop()
            time.sleep(10 * (i + 1))  # the load here comes in bursts: let one pass
            if i == tries - 1:  # the machine, not the project: Ray's wait is fixed (not agent_register_timeout_ms)
                raise AssertionError(f"ray start failed {tries} times: this machine is too busy for Ray's fixed wait "
                                     f"for its dashboard agent (ray-project/ray#65983):\n{str(e)[-600:]}") from e
        except BaseException:
            node.stop()
            raise
    raise AssertionError("unreachable")


class Node:
    """One `ray start ... --block` in a process group of its own; `stop()` ends what it started."""

    def __init__(self, args: list[str], env: dict, log: Path, marker: str):
        self.log = log
        self.marker = marker  # a path every process of this node names on its command line
        self.proc = subprocess.Popen([RAY, "start", *args, "--block"], env=env, start_new_session=True,
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)

    def wait_started(self, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "Ray runtime started" in self.log.read_text():
                return
            if any("Timed out waiting for file" in f.read_text(errors="replace")
                   for f in Path(self.marker).glob("session_2*/logs/raylet.out")):
                raise SlowAgent(self._diagnosis())
            if self.proc.poll() is not None:
                raise AssertionError(f"ray start exited {self.proc.returncode}:\n{self._diagnosis()}")
            time.sleep(0.5)
        raise AssertionError(f"ray start not up after {timeout} s:\n{self._diagnosis()}")

    def _diagnosis(self) -> str:
        text = self.log.read_text()[-2000:]
        for f in sorted(Path(self.marker).glob("session_2*/logs/raylet.out")):
            lines = f.read_text(errors="replace").splitlines()
            text += f"\n--- {f}:\n" + "\n".join(
                [x for x in lines if " E " in x or " C " in x or "Check failed" in x or "***" in x][-30:] + lines[-5:])
        return text

    def _ours(self) -> list[psutil.Process]:
        found = []
        try:
            found = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            pass
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(self.marker in part for part in (p.info["cmdline"] or [])):
                    found.append(p)
            except psutil.Error:
                pass
        return found

    def stop(self) -> None:
        procs = self._ours()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` then stops its own processes
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group is ours alone (start_new_session)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        for p in procs + self._ours():
            try:
                p.kill()
            except psutil.Error:
                pass


@pytest.fixture(scope="module")
def head():
    """A real head on this machine, started as a user with token auth gets it by default."""
    root = Path(tempfile.mkdtemp(prefix="hocr-", dir="/tmp"))  # short: Ray's Unix sockets live under it
    head_home, laptop = root / "head-home", root / "laptop-home"
    head_home.mkdir()
    laptop.mkdir()
    head_env = _base_env(head_home)
    head_env["RAY_raylet_start_wait_time_s"] = "180"  # not a user setting: this 2-core machine is shared and busy
    # The user's one step before starting the head (or an earlier `ray.init()` did it for them).
    gen = subprocess.run([RAY, "get-auth-token", "--generate"], check=False, env=head_env, capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    token = gen.stdout.strip()
    assert token and (head_home / ".ray" / "auth_token").read_text().strip() == token
    gcs, dashboard, client = free_ports(3)
    nodes = []
    try:
        node = start_node(["--head", "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                           "--ray-client-server-port", str(client), *_node_ports(), "--num-cpus", "2",
                           "--disable-usage-stats"], head_env, root, "head")
        nodes.append(node)
        assert "Token authentication is enabled" in node.log.read_text()
        url = f"http://127.0.0.1:{dashboard}"
        _wait_jobs_api(url, token)
        yield {"url": url, "gcs": gcs, "token": token, "root": root, "head_env": head_env,
               "laptop_env": _base_env(laptop), "nodes": nodes}
    finally:
        for n in reversed(nodes):
            n.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_jobs_api(url: str, token: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while True:
        request = urllib.request.Request(f"{url}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.time() > deadline:
            raise AssertionError(f"the dashboard's job API at {url} did not answer in {timeout} s")
        time.sleep(1)


def _checkout_copy(dest: Path) -> Path:
    """What `--working-dir .` uploads from a checkout: the code and configs (never .venv or out/: .gitignore)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pipeline", "actors", "configs"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", dest)
    (dest / "samples").mkdir()
    shutil.copy(PAGE, dest / "samples")
    return dest


def _submit(env: dict, cwd: Path, url: str, entrypoint: list[str], timeout: float = 420) -> subprocess.CompletedProcess:
    """`ray job submit --address URL --working-dir . -- ENTRYPOINT`, run in `cwd` as README shows it."""
    return subprocess.run([RAY, "job", "submit", "--address", url, "--working-dir", ".", "--", *entrypoint],
                          check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _job_status(url: str, token: str, output: str) -> str:
    from ray.job_submission import JobSubmissionClient

    job_id = re.search(r"Job '(raysubmit_\w+)' submitted", output).group(1)
    # The Python SDK takes the same token as a header (or reads RAY_AUTH_MODE/RAY_AUTH_TOKEN).
    client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
    return str(client.get_job_status(job_id))


def test_submit_needs_the_token_step_and_then_runs(head, tmp_path):
    work = _checkout_copy(tmp_path / "checkout")
    out = tmp_path / "out"
    entry = ["hybridocr", "run", "samples/table.jpg", "--out", str(out)]
    url = head["url"]

    # README's step: the token from the head (`ssh HEAD ray get-auth-token`; on the head itself just
    # `ray get-auth-token`), exported with RAY_AUTH_MODE=token, then README's command unchanged.
    fetched = subprocess.run([RAY, "get-auth-token"], check=False, env=head["head_env"], capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0 and fetched.stdout.strip() == head["token"]
    env = {**head["laptop_env"], "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": fetched.stdout.strip()}
    t = time.time()
    job_log = tmp_path / "submit.log"  # a file, not a pipe: nobody reads while the refusals run
    job = subprocess.Popen([RAY, "job", "submit", "--address", url, "--working-dir", ".", "--", *entry],
                           cwd=work, env=env, stdout=job_log.open("w"), stderr=subprocess.STDOUT)
    try:
        # Meanwhile, a laptop without the step: README's command alone fails as the user saw ...
        bare = _submit(head["laptop_env"], work, url, entry, timeout=120)
        assert bare.returncode != 0
        assert "AuthenticationError" in bare.stderr and "Missing authentication token" in bare.stderr, bare.stderr[-2000:]
        # ... and so it does with the right token in ~/.ray/auth_token: the CLI sends it only under RAY_AUTH_MODE=token.
        other_home = tmp_path / "home-with-token-file"
        (other_home / ".ray").mkdir(parents=True)
        (other_home / ".ray" / "auth_token").write_text(head["token"])
        file_only = _submit({**head["laptop_env"], "HOME": str(other_home)}, work, url, entry, timeout=120)
        assert file_only.returncode != 0 and "Missing authentication token" in file_only.stderr, file_only.stderr[-2000:]
        print(f"refused without the step: both after {time.time() - t:.1f} s")
        job.wait(timeout=420)
    finally:
        if job.poll() is None:
            job.kill()
    logs = job_log.read_text()
    print(f"job: {time.time() - t:.1f} s")
    assert job.returncode == 0, logs[-4000:]
    assert _job_status(url, head["token"], logs) == "SUCCEEDED"

    rows = pq.read_table(out / "pages").to_pylist()
    assert len(rows) == 1 and rows[0]["error"] is None and rows[0]["text"].strip(), rows
    assert rows[0]["source"] == "samples/table.jpg", rows[0]["source"]  # as given, relative to the submit directory
    report = json.loads((out / "report.json").read_text())
    print({k: v for k, v in report.items() if "memory" in k})
    # The report counts the job's Ray workers (the PaddleOCR actor alone holds hundreds of MB), not the driver alone.
    assert "memory_note" not in report, report["memory_note"]
    assert report["peak_memory_mib"] >= report["peak_driver_memory_mib"] + 200, report
    assert len(report["peak_memory_by_node_mib"]) == 1, report


MEMORY_JOB = '''
import json, os, time
import ray
from pipeline.report import ResourceSampler

sampler = ResourceSampler(cluster_interval_s=1.0)
ray.init()  # RAY_ADDRESS, set by the job


@ray.remote(num_cpus=0, resources={"far": 1})
class Hog:
    def __init__(self, mib):
        self.block = bytearray(os.urandom(1 << 20)) * mib  # resident, not lazily mapped

    def where(self):
        return os.getpid(), ray.get_runtime_context().get_node_id()


hog = Hog.remote(400)
pid, node_id = ray.get(hog.where.remote())
far = next(f"{n['NodeManagerAddress']} {n['NodeID'][:8]}" for n in ray.nodes() if n["NodeID"] == node_id)
deadline = time.time() + 60
while time.time() < deadline:
    sampler.sample()
    if sampler.summary()["peak_memory_by_node_mib"].get(far, 0) >= 400:
        break
    time.sleep(1)
print("SUMMARY " + json.dumps({"far": far, "driver_node": sampler.cluster.local_node, **sampler.summary()}))
'''


def test_report_memory_counts_workers_on_another_node(head, tmp_path):
    """A second node joins (as README tells: RAY_AUTH_MODE=token and the head's token); an actor
    holding 400 MiB there is counted in that node's figure and in the peak, by the probe actor."""
    root = head["root"]
    worker_env = {**head["head_env"], "HOME": str(root / "laptop-home"), "RAY_AUTH_MODE": "token",
                  "RAY_AUTH_TOKEN": head["token"]}
    t = time.time()
    node = start_node(["--address", f"127.0.0.1:{head['gcs']}", *_node_ports(), "--num-cpus", "1",
                       "--resources", '{"far": 1}', "--disable-usage-stats"], worker_env, root, "far")
    head["nodes"].append(node)
    print(f"second node up: {time.time() - t:.1f} s")
    work = tmp_path / "job"
    work.mkdir()
    (work / "memory_job.py").write_text(MEMORY_JOB)
    env = {**head["laptop_env"], "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head["token"]}
    t = time.time()
    done = _submit(env, work, head["url"], ["python", "memory_job.py"], timeout=300)
    print(f"job: {time.time() - t:.1f} s")
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs[-4000:]
    summary = json.loads(logs.split("SUMMARY ", 1)[1].splitlines()[0])
    print(summary)
    by_node = summary["peak_memory_by_node_mib"]
    assert summary["far"] != summary["driver_node"] and by_node[summary["far"]] >= 400, summary
    assert summary["peak_memory_mib"] >= summary["peak_driver_memory_mib"] + 400, summary
    assert "memory_note" not in summary, summary


def _node_id_with_cpus(env: dict, url: str, cpus: int) -> str:
    """The first 8 characters of the node id of the one live node with `cpus` CPUs (Ray's state API)."""
    deadline = time.time() + 60
    while True:
        out = subprocess.run([RAY, "list", "nodes", "--address", url, "--format", "json", "--detail"], env=env,
                             capture_output=True, text=True, timeout=60)
        try:
            ids = [n["node_id"][:8] for n in json.loads(out.stdout)
                   if n.get("state") == "ALIVE" and (n.get("resources_total") or {}).get("CPU") == cpus]
        except ValueError:
            ids = []
        if len(ids) == 1 or time.time() > deadline:
            assert len(ids) == 1, (ids, out.stdout[-2000:], out.stderr[-2000:])
            return ids[0]
        time.sleep(1)


def test_a_job_reads_on_two_nodes_and_loses_no_page_when_one_dies(head, tmp_path):
    """A worker node joins; `ray job submit` over many pages reads on it (each row names its node;
    the head holds the other reader or none); the worker node is killed mid-run. The job goes on without it and ends with
    every page exactly once (rows the dead node wrote stay, once each)."""
    from tests.conftest import text_images

    root = head["root"]
    worker_env = {**head["head_env"], "HOME": str(root / "laptop-home"), "RAY_AUTH_MODE": "token",
                  "RAY_AUTH_TOKEN": head["token"]}
    worker = start_node(["--address", f"127.0.0.1:{head['gcs']}", *_node_ports(), "--num-cpus", "4",
                         "--disable-usage-stats"], worker_env, root, "ocr2")
    head["nodes"].append(worker)
    work = _checkout_copy(tmp_path / "checkout")
    n = 60
    text_images(work / "pages", n)
    out = tmp_path / "out"
    # two readers of 2 CPUs: the head (2 CPUs) can hold one at most, so the worker node (4 CPUs)
    # holds one or both (Ray decides); it is killed once rows it read are on disk
    entry = ["hybridocr", "run", "pages", "--out", str(out), "--set", "paddle.actors=2", "--set", "paddle.num_cpus=2",
             "--set", "rows_per_file=2"]
    env = {**head["laptop_env"], "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head["token"]}

    def rows() -> list[dict]:
        try:
            return pq.read_table(out / "pages", columns=["page_id", "node", "error"]).to_pylist()
        except (OSError, ValueError):  # no file yet, or one being written
            return []

    worker_id = _node_id_with_cpus(env, head["url"], 4)
    job_log = tmp_path / "job.log"
    t = time.time()
    job = subprocess.Popen([RAY, "job", "submit", "--address", head["url"], "--working-dir", ".", "--", *entry],
                           cwd=work, env=env, stdout=job_log.open("w"), stderr=subprocess.STDOUT)
    killed_at = None
    try:
        deadline = time.time() + 400
        while time.time() < deadline and job.poll() is None:
            seen = rows()
            if any(r["node"].split()[-1] == worker_id for r in seen) and len(seen) <= n - 16:  # it reads, work left
                before = seen
                worker.stop()  # the node's raylet and every worker on it, at once
                killed_at = time.time() - t
                break
            time.sleep(1)
        job.wait(timeout=500)
    finally:
        if job.poll() is None:
            job.kill()
    logs = job_log.read_text()
    assert killed_at is not None, f"the job never had rows from the worker node on disk with pages left:\n{logs[-3000:]}"
    nodes = {r["node"] for r in before}
    print(f"killed the worker node {killed_at:.1f} s in, with {len(before)} rows on disk from {sorted(nodes)}; "
          f"job rc {job.returncode} after {time.time() - t:.1f} s")
    # the job lives on: Ray Data retries the dead node's tasks and restarts its actor on the head;
    # the job's own actor (the progress counter) sits on the driver's node
    assert job.returncode == 0, logs[-4000:]
    final = pq.read_table(out / "pages", columns=["page_id", "node", "error"]).to_pylist()
    assert len(final) == n and len({r["page_id"] for r in final}) == n, (len(final), logs[-3000:])
    assert all(r["error"] is None for r in final), [r for r in final if r["error"]][:3]
    assert len({r["node"] for r in final}) >= 2  # rows read on the dead node stay, once each
