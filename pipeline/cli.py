"""`hybridocr` command line: run, export, bench, eval, serve."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import yaml


def _progress_printer():
    last = [0.0]

    def show(done: int, errors: int, plan, started: float) -> None:
        stream = sys.stderr
        tty = stream.isatty()
        now = time.time()
        final = done >= plan.todo_pages
        if not final and not tty and now - last[0] < 10:
            return
        last[0] = now
        elapsed = max(now - started, 1e-9)
        rate = 60 * done / elapsed
        eta = (plan.todo_pages - done) / (rate / 60) if done else float("nan")
        eta_s = "--" if eta != eta else time.strftime("%H:%M:%S", time.gmtime(eta))
        msg = (f"[{done}/{plan.todo_pages} pages] {100 * done / max(plan.todo_pages, 1):5.1f}%  "
               f"{rate:6.1f} pages/min  ETA {eta_s}  errors {errors}")
        stream.write(("\r" + msg) if tty else msg + "\n")
        if tty and final:
            stream.write("\n")
        stream.flush()

    return show


def refuse(error: Exception, rc: int = 2) -> int:
    """A refusal that says what to do (the error's message) on stderr; the command's exit status."""
    print(f"hybridocr: {error}", file=sys.stderr)
    return rc


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--set expects KEY=VALUE (e.g. paddle.actors=2), got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def cmd_run(args) -> int:
    from pipeline.config import ConfigError, load_config
    from pipeline.job import EngineMissing, run_job
    from pipeline.lock import OutputLocked
    from pipeline.report import ResourceSampler, build_report, write_report
    from pipeline.sources import InputError

    try:
        config = load_config(args.config, {"mode": args.mode, **_overrides(args.set)} if args.mode else _overrides(args.set))
    except ConfigError as e:
        return refuse(e)
    sampler = ResourceSampler()
    printer = _progress_printer() if not args.quiet else (lambda *a: None)

    def on_progress(done, errors, plan, started):
        sampler.sample()
        printer(done, errors, plan, started)

    started = time.time()
    try:
        plan = run_job(args.inputs, args.out, config, force=args.force, retry_errors=not args.keep_errors,
                       on_progress=on_progress, command=" ".join(["hybridocr", *sys.argv[1:]]))
    except (InputError, EngineMissing) as e:
        return refuse(e)
    except OutputLocked as e:
        return refuse(e, 3)
    sampler.sample()
    ended = time.time()
    run = {"wall_seconds": ended - (plan.started or started), "total_seconds": round(ended - started, 1),
           "pages_processed": plan.todo_pages, "device": plan.device, "vlm_device": plan.vlm_device,
           "actors": plan.actors, "skipped_already_done": plan.total_pages - plan.todo_pages, "plan": plan.summary(),
           **sampler.summary()}
    report = build_report(args.out, run)
    md = write_report(args.out, report)
    if not args.quiet:
        print(md)
    return 0


def cmd_export(args) -> int:
    from pipeline.export import ExportError, export

    try:
        paths = export(args.out_dir, args.format, args.to)
    except ExportError as e:
        return refuse(e)
    print(f"wrote {len(paths)} files to {args.to}")
    return 0


def cmd_bench(args) -> int:
    from pipeline.bench import main as bench_main

    return bench_main(args, _overrides(args.set))


def cmd_serve(args) -> int:
    """The same engines online on a local Ray (or RAY_ADDRESS): blocks until Ctrl-C."""
    from pipeline.config import ConfigError, load_config
    from pipeline.job import EngineMissing, check_engines, init_ray

    sets = _overrides(args.set)
    for key, value in (("mode", args.mode), ("serve.host", args.host), ("serve.port", args.port)):
        if value is not None:
            sets[key] = value
    try:
        config = load_config(args.config, sets)
        check_engines(config)
    except (ConfigError, EngineMissing) as e:
        return refuse(e)
    if args.browse:
        from pipeline.output import OutputDir

        if not OutputDir(args.browse).page_files():
            print(f"hybridocr: {args.browse}/pages has no Parquet files: give the --out directory of a `hybridocr run`", file=sys.stderr)
            return 2
    from ray import serve

    from pipeline.serve.app import build_app

    init_ray(config)
    serve.start(http_options={"host": config.serve.host, "port": config.serve.port})
    serve.run(build_app(config, args.browse), name="hybridocr", route_prefix="/")
    url = f"http://{config.serve.host}:{config.serve.port}"
    print(f"hybridocr serve: mode {config.mode} at {url}/ (review page), {url}/v1/ocr, {url}/docs; Ctrl-C stops", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def cmd_eval(args) -> int:
    from pipeline.evaluate import main as eval_main

    return eval_main(args, on_progress=_progress_printer())


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand's arguments (a manifest's entrypoint is checked against the same parser)."""
    parser = argparse.ArgumentParser(prog="hybridocr", description="Batch OCR for PDF and scan corpora on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="OCR pages into a Parquet dataset (resumable)")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="PDFs, images, directories, globs or s3:// gs:// file:// URIs")
    run.add_argument("--out", required=True, help="output directory (Parquet under OUT/pages, report.md, report.json)")
    run.add_argument("--config", help="YAML config (see configs/)")
    run.add_argument("--mode", choices=["paddle", "vlm", "hybrid"],
                     help="paddle: PaddleOCR reads every OCR page; vlm: the VLM does; hybrid: by route with escalation (default: config)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. paddle.actors=2")
    run.add_argument("--force", action="store_true", help="recompute pages already in OUT")
    run.add_argument("--keep-errors", action="store_true",
                     help="do not retry pages whose row in OUT is an error (by default a rerun reads them again and replaces the row)")
    run.add_argument("--quiet", action="store_true", help="no progress line or printed report")
    run.set_defaults(func=cmd_run)

    exp = sub.add_parser("export", help="write one Markdown or text file per document")
    exp.add_argument("out_dir")
    exp.add_argument("--format", choices=["md", "txt"], default="md")
    exp.add_argument("--to", required=True)
    exp.set_defaults(func=cmd_export)

    bench = sub.add_parser("bench", help="pages/min of the Ray job against a baseline on the same pages (hybrid: against both pure modes)")
    bench.add_argument("inputs", nargs="*", metavar="INPUT")
    bench.add_argument("--config")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--pages", type=int, default=None, help="use at most this many pages")
    bench.add_argument("--mode", choices=["paddle", "vlm", "hybrid"], help="baseline: paddleocr loop (paddle) or raw vLLM (vlm)")
    bench.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N distinct generated A4 pages")
    bench.add_argument("--synthetic-vertical", type=float, default=0.0, metavar="SHARE",
                       help="make this share (0-1) of the synthetic pages vertical Chinese (hybrid mode routes them to the VLM)")
    bench.add_argument("--synthetic-degraded", type=float, default=0.0, metavar="SHARE",
                       help="make this share (0-1) of the horizontal synthetic pages poor scans (blur, faded ink, noise, skew): escalation has pages to escalate")
    bench.add_argument("--skip-baseline", action="store_true",
                       help="no baseline: no plain paddleocr loop / raw vLLM; in hybrid mode no paddle-only and vlm-only runs")
    bench.add_argument("--paddle-config", help="hybrid: the config of the paddle-only run (default: --config with mode paddle)")
    bench.add_argument("--vlm-config", help="hybrid: the config of the vlm-only run (default: --config with mode vlm)")
    bench.add_argument("--pure-pages", type=int, default=None, metavar="N", help="hybrid: run the pure modes on the first N files only")
    bench.add_argument("--baseline-pages", type=int, default=None, metavar="N", help="time the baseline on the first N pages only (the slow out-of-the-box loop)")
    bench.add_argument("--profile", action="store_true",
                       help="paddle: run one reader in this process and print seconds per step (det, crop, rec, inference) instead")
    bench.add_argument("--serve", action="store_true",
                       help="the Serve app instead: the batch job, then a bounded load on loopback at concurrency 1, 8, 32 (p50/p95, pages/min)")
    bench.add_argument("--serve-url", help="with --serve: load this running app instead of starting one")
    bench.add_argument("--serve-levels", default="1,8,32", metavar="C[:N],...",
                       help="with --serve: the concurrencies, in this order; C:N sends only the first N files at concurrency C "
                            "(e.g. 32,8:64,1:12 where one page takes seconds)")
    bench.add_argument("--json", help="also write the figures to this JSON file")
    bench.set_defaults(func=cmd_bench)

    srv = sub.add_parser("serve", help="the same engines online: HTTP API (/v1/ocr) and a review page on Ray Serve")
    srv.add_argument("--config", help="YAML config (see configs/; its serve: section sets limits and autoscaling)")
    srv.add_argument("--mode", choices=["paddle", "vlm", "hybrid"], help="default mode of requests; vlm and hybrid start the VLM deployment")
    srv.add_argument("--host", help="listen address (default 127.0.0.1; 0.0.0.0 for other machines)")
    srv.add_argument("--port", type=int, help="HTTP port (default 8000)")
    srv.add_argument("--browse", metavar="OUT_DIR", help="also show a batch run's output on the review page")
    srv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. serve.max_pages=10")
    srv.set_defaults(func=cmd_serve)

    from pipeline.evaluate import add_parser as add_eval_parser

    add_eval_parser(sub, cmd_eval)  # hybridocr eval DATA... --mode ... --out DIR
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
