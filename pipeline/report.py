"""Run report: counts, speed, routes, confidence, errors and resource use, from the written Parquet."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow.compute as pc

from pipeline.output import OutputDir


class ResourceSampler:
    """CPU%, peak memory and peak GPU memory of a run, sampled from the driver's progress loop (~every 2 s).

    `peak_memory_mib` is the largest sum, at one sample, of the memory held (PSS on Linux: shared
    pages split between the processes that map them; RSS elsewhere: `cluster_memory.resident`) by
    - the driver's process tree: for an embedded local Ray (`hybridocr run` with no cluster) that
      tree holds Ray's own processes (GCS, raylet, dashboard agents) and every worker; and
    - the Ray worker processes whose current job is this run's, with their children, on every node
      of the cluster (`pipeline/cluster_memory.py`), each process counted once. Under `ray job
      submit` these are the OCR actors and the render/write tasks wherever they run; Ray's own
      processes on the nodes (raylet, GCS, dashboard, object store) are not counted there.
    The cluster part is refreshed at most every `cluster_interval_s` seconds and the latest figure
    is added to the driver's at every sample. `peak_driver_memory_mib` is the driver's tree alone,
    `peak_memory_by_node_mib` each node's own peak ("IP node-id-prefix": MiB; the driver counts on
    its node). A shared page (the object store mapped into workers, shared libraries) counts once,
    split between its processes; under `ray job submit` the shares of Ray's own processes are left
    out with them. `cpu_percent` is still the driver's tree only: the
    workers' CPU time is lost when Ray ends an idle worker.
    """

    def __init__(self, cluster_interval_s: float = 5.0):
        from pipeline.cluster_memory import ClusterMemory

        self.proc = psutil.Process()
        self.started = time.time()
        self.cpu_start = self._cpu_seconds()
        self.peak_rss = 0  # driver tree + the job's workers on every node, at one sample
        self.peak_driver_rss = 0
        self.peak_by_node: dict[str, int] = {}
        self.cluster = ClusterMemory(interval_s=cluster_interval_s)
        self.peak_gpu_mib: float | None = None
        self.gpu_util: list[float] = []  # percent, one value per sample (mean over the GPUs)
        self.cpu_seconds = 0.0

    def _tree(self):
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return [self.proc]

    def _cpu_seconds(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def sample(self, force_cluster: bool = False) -> None:
        from pipeline.cluster_memory import rss_of

        tree = self._tree()
        driver, _ = rss_of([self.proc.pid])
        by_node = dict(self.cluster.sample(exclude_pids={p.pid for p in tree}, force=force_cluster))
        local = self.cluster.local_node or "driver"
        by_node[local] = by_node.get(local, 0) + driver
        self.peak_driver_rss = max(self.peak_driver_rss, driver)
        self.peak_rss = max(self.peak_rss, sum(by_node.values()))
        for node, rss in by_node.items():
            self.peak_by_node[node] = max(self.peak_by_node.get(node, 0), rss)
        self.cpu_seconds = max(self.cpu_seconds, self._cpu_seconds() - self.cpu_start)
        if shutil.which("nvidia-smi"):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                rows = [[float(x) for x in line.split(",")] for line in out.strip().splitlines()]
                self.peak_gpu_mib = max(self.peak_gpu_mib or 0.0, sum(r[0] for r in rows))
                self.gpu_util.append(sum(r[1] for r in rows) / len(rows))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass

    def summary(self) -> dict:
        wall = max(time.time() - self.started, 1e-9)
        out = {
            "cpu_percent": round(100 * self.cpu_seconds / (wall * psutil.cpu_count()), 1),
            "cpus": psutil.cpu_count(),
            "peak_memory_mib": round(self.peak_rss / 2**20),
            "peak_driver_memory_mib": round(self.peak_driver_rss / 2**20),
            "peak_memory_by_node_mib": {k: round(v / 2**20) for k, v in sorted(self.peak_by_node.items())},
            "peak_gpu_memory_mib": self.peak_gpu_mib,
            "mean_gpu_utilization_percent": round(sum(self.gpu_util) / len(self.gpu_util), 1) if self.gpu_util else None,
        }
        if self.cluster.error:
            out["memory_note"] = f"Ray workers partly or not counted ({self.cluster.error})"
        return out


def read_pages(out_dir, columns: list[str] | None = None):
    """The page rows under OUT_DIR (local path or URI) as an Arrow table."""
    return OutputDir(out_dir).read_pages(columns)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def build_report(out_dir: Path, run: dict) -> dict:
    """`run` holds this run's facts (wall seconds, pages processed, plan, resources)."""
    table = read_pages(out_dir, ["route", "engine", "confidence", "error", "seconds_render", "seconds_classify", "seconds_ocr"])
    rows = table.to_pylist()
    routes: dict[str, dict] = {}
    engine_seconds: dict[str, list[float]] = {}
    for r in rows:
        key = r["route"] or "error"
        entry = routes.setdefault(key, {"pages": 0, "confidences": [], "seconds": []})
        entry["pages"] += 1
        if r["confidence"] is not None and r["error"] is None:
            entry["confidences"].append(r["confidence"])
        if r["seconds_ocr"] is not None and r["error"] is None:
            entry["seconds"].append(r["seconds_ocr"])
            engine_seconds.setdefault(r["engine"] or "none", []).append(r["seconds_ocr"])
    per_route = {
        k: {"pages": v["pages"], "mean_confidence": _mean(v["confidences"]), "mean_seconds_ocr": _mean(v["seconds"])}
        for k, v in sorted(routes.items())
    }
    errors = [r["error"] for r in rows if r["error"]]
    engines: dict[str, int] = {}
    for r in rows:
        engines[r["engine"] or "none"] = engines.get(r["engine"] or "none", 0) + 1
    stage_means = {}
    for col in ("seconds_render", "seconds_classify", "seconds_ocr"):
        mean = pc.mean(table[col]).as_py()
        stage_means[col] = round(mean, 4) if mean is not None else None
    wall = run.get("wall_seconds") or 0
    processed = run.get("pages_processed", 0)
    return {
        "out_dir": str(out_dir),
        "pages": len(rows),
        "pages_this_run": processed,
        "wall_seconds": round(wall, 1),
        "pages_per_min": round(60 * processed / wall, 2) if wall and processed else None,
        "routes": per_route,
        "engines": dict(sorted(engines.items())),
        # seconds an OCR actor spent per page, by the engine that read it (escalated pages: both engines' time)
        "engine_seconds_ocr": {k: _mean(v) for k, v in sorted(engine_seconds.items())},
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:10],
        "mean_stage_seconds": stage_means,
        **{k: v for k, v in run.items() if k not in ("wall_seconds", "pages_processed")},
    }


def report_markdown(report: dict) -> str:
    lines = [
        "# hybridocr run report",
        "",
        f"- pages in output: {report['pages']} (this run: {report['pages_this_run']})",
        f"- speed: {report['pages_per_min']} pages/min ({report['wall_seconds']} s processing; "
        f"{report.get('total_seconds', '?')} s with start-up and discovery)",
        f"- errors: {report['errors']}",
        f"- pages per engine: {', '.join(f'{k} {v}' for k, v in report['engines'].items())}",
    ]
    for key in ("device", "actors", "vlm_device", "cpu_percent", "cpus", "peak_memory_mib", "peak_driver_memory_mib",
                "peak_memory_by_node_mib", "memory_note", "peak_gpu_memory_mib", "mean_gpu_utilization_percent"):
        if key in report:
            value = report[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    plan = report.get("plan") or {}
    if plan.get("gpu_split"):
        lines.append(f"- GPU split (hybrid, one card): {plan['gpu_split']}")
    if plan.get("vlm_engine_up_seconds"):
        lines.append(f"- VLM engine up after: {plan['vlm_engine_up_seconds']} s (start phases, s: "
                     f"{plan.get('vlm_engine_start_phases')}); rows reached the writer (first, last s): "
                     f"{plan.get('rows_reached_writer_seconds')}")
    if plan.get("paddle_actors_ready_seconds"):
        first, last = plan["paddle_actors_ready_seconds"]
        phases = ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in (plan.get("paddle_actor_start_phases") or {}).items())
        lines.append(f"- PaddleOCR actors ready {first}-{last} s after the start (the last one: {phases}); "
                     f"rows reached the writer (first, last s): {plan.get('rows_reached_writer_seconds')}")
    lines += ["", "| route | pages | mean confidence | OCR seconds per page |", "|---|---|---|---|"]
    for route, v in report["routes"].items():
        conf = "" if v["mean_confidence"] is None else f"{v['mean_confidence']:.3f}"
        secs = "" if v.get("mean_seconds_ocr") is None else f"{v['mean_seconds_ocr']:.3f}"
        lines.append(f"| {route} | {v['pages']} | {conf} | {secs} |")
    lines += ["", "| stage | mean seconds per page |", "|---|---|"]
    lines += [f"| {k.removeprefix('seconds_')} | {v} |" for k, v in report["mean_stage_seconds"].items()]
    if report["error_examples"]:
        lines += ["", "Errors (distinct, up to 10):", ""] + [f"- {e}" for e in report["error_examples"]]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict) -> str:
    md = report_markdown(report)
    out = OutputDir(out_dir)
    out.write_text("report.json", json.dumps(report, indent=2, ensure_ascii=False))
    out.write_text("report.md", md)
    return md
