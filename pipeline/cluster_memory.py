"""Memory of the Ray worker processes of this job, on every node of the cluster.

Under `ray job submit` the driver is one process on the head; the pages are read in Ray workers
(the OCR actors, the render/write tasks) that are children of each node's raylet, not of the
driver. `ClusterMemory.sample()` finds them and sums their resident memory, node by node:

- which processes: each alive node's raylet is asked for its core workers (`GetNodeStats`, the
  call behind `ray memory` and the dashboard's worker list). A worker belongs to this run when
  its *current* job is the driver's job (the GCS worker table is no use here: a pooled worker
  leased to the job keeps an empty job id there). Each such worker counts with all its
  descendants (vLLM's engine-core process, for instance).
- their memory: on the driver's node with psutil in the driver; on any other node where the job
  has workers, by a tiny actor pinned to that node (`num_cpus=0`, hard node affinity), created
  the first time it is needed and asked for the RSS of the pids the raylet named (it leaves
  itself out). A probe that has not answered within `wait_s` keeps its node's previous figure.
- cost: a cluster sample is taken at most every `interval_s` seconds (5), and never more often
  than ten times the time the previous one took; in between, `sample()` returns the previous
  figures. One RPC per node plus psutil per worker process; probes only on nodes the job uses.

Any failure (no raylet reachable, a Ray without these internals) leaves the figures empty and
says why in `error`: the report then counts the driver alone, as it did before.
"""

from __future__ import annotations

import os
import time

import psutil
import ray

_RPC_TIMEOUT_S = 5.0


def resident(process: psutil.Process) -> int:
    """Bytes of memory a process holds: PSS where the OS gives it (Linux), else RSS.

    PSS counts a shared page once in total, split between the processes that map it. RSS counts
    it in each: the object store (mapped into every worker that reads a block) and the shared
    libraries (~150-280 MB of file pages per Ray worker) would be counted once per process, and a
    sum of RSS over a Ray job's ~15 processes overstates the machine's memory by ~1 GB on 2 cores.
    """
    try:
        return process.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return process.memory_info().rss


def rss_of(pids, exclude=()) -> tuple[int, int]:
    """Summed memory (`resident`: PSS, else RSS; bytes) of these processes and all their descendants,
    each once; and how many."""
    exclude = set(exclude)
    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            if p.pid in seen or p.pid in exclude:
                continue
            seen.add(p.pid)
            try:
                total += resident(p)
            except psutil.Error:
                pass
    return total, len(seen)


@ray.remote(num_cpus=0, max_restarts=0)
class _NodeMemoryProbe:
    """Lives on one node for the run; measures the pids it is given there."""

    def rss(self, pids: list[int]) -> tuple[int, int]:
        return rss_of(pids, exclude={os.getpid()})


class ClusterMemory:
    """Bytes of RSS of this job's Ray workers per node (key: "IP node-id-prefix"), sampled cheaply."""

    def __init__(self, interval_s: float = 5.0, wait_s: float = 2.0):
        self.interval_s = interval_s
        self.wait_s = wait_s
        self.by_node: dict[str, int] = {}  # latest figure per node (the driver's node: workers only)
        self.processes: dict[str, int] = {}  # worker processes counted per node at the latest figure
        self.local_node: str | None = None  # key of the driver's node
        self.error: str | None = None
        self.samples = 0
        self._next_at = 0.0
        self._stubs: dict[str, object] = {}
        self._probes: dict[str, object] = {}
        self._pending: dict[str, object] = {}  # node key -> ObjectRef of a probe's answer

    def sample(self, exclude_pids=(), force: bool = False) -> dict[str, int]:
        """Refresh the figures if due (`force`: now); `exclude_pids` are counted elsewhere (the driver's tree)."""
        now = time.monotonic()
        if not ray.is_initialized() or (not force and now < self._next_at):
            return self.by_node
        waited = 0.0
        try:
            waited = self._sample(set(exclude_pids))
            self.samples += 1
        except Exception as e:  # noqa: BLE001  never let the measurement break the run
            self.error = f"{type(e).__name__}: {str(e)[:200]}"
        took = time.monotonic() - now - waited  # the driver's own work: RPCs and psutil
        self._next_at = time.monotonic() + max(self.interval_s, 10 * took)
        return self.by_node

    def _sample(self, exclude: set[int]) -> float:
        """One cluster sample; returns the seconds spent waiting for probes."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        context = ray.get_runtime_context()
        job_id = context.get_job_id()
        here = context.get_node_id()
        asked_old_probe = False  # a probe that was already up was asked: worth waiting for
        alive = [n for n in ray.nodes() if n.get("Alive")]
        keys = {n["NodeID"]: f"{n['NodeManagerAddress']} {n['NodeID'][:8]}" for n in alive}
        for gone in set(self.by_node) - set(keys.values()):  # a node that left the cluster counts no more
            self.by_node.pop(gone, None)
            self.processes.pop(gone, None)
            self._probes.pop(gone, None)
            self._pending.pop(gone, None)
        for node in alive:
            node_id = node["NodeID"]
            key = keys[node_id]
            try:
                pids = self._job_workers(node["NodeManagerAddress"], node["NodeManagerPort"], job_id)
            except Exception as e:  # noqa: BLE001  grpc.RpcError, a timeout: this node keeps its previous figure
                self.error = f"raylet of {key}: {type(e).__name__}: {str(e)[:160]}"
                continue
            if node_id == here:
                self.local_node = key
                self.by_node[key], self.processes[key] = rss_of(pids, exclude)
                continue
            if not pids:
                self.by_node[key], self.processes[key] = 0, 0
                continue
            if key in self._pending:  # the previous question is still out: keep its node's figure
                continue
            probe = self._probes.get(key)
            if probe is None:  # starting it takes a worker start: its first answer comes at a later sample
                probe = self._probes[key] = _NodeMemoryProbe.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
            else:
                asked_old_probe = True
            self._pending[key] = probe.rss.remote(pids)
        if not self._pending:
            return 0.0
        started = time.monotonic()
        refs = list(self._pending.values())
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.wait_s if asked_old_probe else 0)
        ready_set = set(ready)
        for key, ref in list(self._pending.items()):
            if ref in ready_set:
                del self._pending[key]
                try:
                    self.by_node[key], self.processes[key] = ray.get(ref)
                except ray.exceptions.RayError as e:  # the probe died (its node went away?): a new one next time
                    self._probes.pop(key, None)
                    self.error = f"memory probe on {key}: {type(e).__name__}"
        return time.monotonic() - started

    def _job_workers(self, address: str, port: int, job_id: str) -> list[int]:
        """Pids of the worker processes whose current job is `job_id`, from that node's raylet."""
        from ray._common.network_utils import build_address
        from ray.core.generated import common_pb2, node_manager_pb2

        target = build_address(address, port)
        stub = self._stubs.get(target)
        if stub is None:
            from ray._private.grpc_utils import init_grpc_channel
            from ray.core.generated import node_manager_pb2_grpc

            channel = init_grpc_channel(target, options=[("grpc.max_receive_message_length", 64 * 2**20)])
            stub = self._stubs[target] = node_manager_pb2_grpc.NodeManagerServiceStub(channel)
        reply = stub.GetNodeStats(node_manager_pb2.GetNodeStatsRequest(include_memory_info=False), timeout=_RPC_TIMEOUT_S)
        return [w.pid for w in reply.core_workers_stats
                if w.worker_type == common_pb2.WORKER and w.job_id.hex() == job_id and w.pid]
