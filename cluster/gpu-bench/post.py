"""After one `hybridocr bench` on the GPU machine: report.md/json and per-row CSV of each Ray job it ran.

    python3 post.py NAME STAGE_DIR     (run with PYTHONPATH=/root/site:.gpu-snap)
"""
import glob
import gzip
import json
import os
import sys
from pathlib import Path

name, st = sys.argv[1], Path(sys.argv[2])
before = set((st / "before.txt").read_text().split()) if (st / "before.txt").exists() else set()
dirs = sorted(set(glob.glob("/tmp/hybridocr-bench-*")) - before, key=os.path.getmtime)
jpath = Path(f"/root/out/{name}.json")
j = json.loads(jpath.read_text()) if jpath.exists() else {}
jobs = [j.get("ray_job") or {}]
if "paddle_only" in j:
    jobs += [j["paddle_only"], j.get("vlm_only") or {}]
from pipeline.report import build_report, read_pages, write_report  # noqa: E402

COLS = ["page_id", "source", "route", "engine", "confidence", "paddle_confidence", "vlm_confidence", "vlm_finish_reason",
        "vlm_prompt_tokens", "vlm_output_tokens", "vlm_attempts", "vlm_problem", "seconds_render", "seconds_classify",
        "seconds_ocr", "finished_at", "error"]
for k, d in enumerate(dirs):
    rj = jobs[k] if k < len(jobs) else {}
    run = {"wall_seconds": rj.get("seconds") or 0, "pages_processed": rj.get("pages") or 0}
    for key in ("device", "vlm_device", "actors", "plan", "cpu_percent", "peak_memory_mib", "peak_gpu_memory_mib",
                "mean_gpu_utilization_percent"):
        if key in rj:
            run[key] = rj[key]
    try:
        rep = build_report(Path(d), run)
        write_report(Path(d), rep)
        for f in ("report.md", "report.json"):
            (st / f"{k}_{f}").write_bytes((Path(d) / f).read_bytes())
    except Exception as e:  # a killed run: partial output
        print(f"post: report of {d} failed: {type(e).__name__}: {e}")
    try:
        rows = read_pages(d, COLS + ["text"]).to_pandas()
        rows.drop(columns="text").to_csv(st / f"{k}_rows.csv", index=False)
        # each page's text, so that two runs' readings compare page by page (CER), not only their confidences
        with gzip.open(st / f"{k}_texts.jsonl.gz", "wt", encoding="utf-8") as f:
            for page_id, text in zip(rows["page_id"], rows["text"]):
                f.write(json.dumps({"page_id": page_id, "text": text}, ensure_ascii=False) + "\n")
        print(f"post: {d}: {len(rows)} rows; engines {rows['engine'].value_counts().to_dict()}; "
              f"errors {int(rows['error'].notna().sum())}")
    except Exception as e:
        print(f"post: rows of {d} failed: {type(e).__name__}: {e}")
if rj := j.get("ray_job"):
    keep = {k: rj.get(k) for k in ("pages", "seconds", "pages_per_min", "pool_pages_per_min", "writer_pages_per_min",
                                    "pool_pages_per_min_by_engine", "vlm_route_pages", "escalated", "escalated_won_by_vlm",
                                    "peak_gpu_memory_mib", "mean_gpu_utilization_percent", "errors", "engines")}
    print("post: ray_job", json.dumps(keep))
    print("post: plan", json.dumps(rj.get("plan")))
for key in ("baseline", "mixture", "ratio"):
    if key in j:
        print(f"post: {key}", json.dumps(j[key]))
