"""Tensor parallelism's wiring on a real Ray: each VLM actor in its own placement group of TP GPUs.

vLLM's Ray executor puts its TP workers into the placement group of the actor that builds the
engine (`ray.util.get_current_placement_group()`, passed on to its engine process). This checks,
with a Ray that has two logical GPUs and no real ones, that the `map_batches` arguments from
`ray_remote_args` give each actor such a group and that tasks it starts (as vLLM's workers are)
land in it and get one GPU each. Own process: the session's Ray has no GPUs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, ray
    from actors.vlm import ray_remote_args, _in_ray_actor
    from pipeline.config import VlmConfig

    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_gpus=1, num_cpus=0)
    def tp_worker():  # where vLLM's TP worker would run
        pg = ray.util.get_current_placement_group()
        return pg.id.hex() if pg else None, ray.get_gpu_ids()

    class Probe:
        def __init__(self):
            pg = ray.util.get_current_placement_group()
            self.bundles = pg.bundle_specs if pg else None
            self.workers = ray.get([tp_worker.remote() for _ in range(2)])
            self.pg = pg.id.hex() if pg else None
            self.in_actor = _in_ray_actor()

        def __call__(self, batch):
            return {"info": [json.dumps({"bundles": self.bundles, "pg": self.pg, "workers": self.workers,
                                         "in_actor": self.in_actor})] * len(batch["id"])}

    args = ray_remote_args(VlmConfig(tensor_parallel_size=2))
    rows = ray.data.range(4).map_batches(Probe, batch_size=4, **args).take_all()
    print("RESULT", rows[0]["info"])
    print("DRIVER_IN_ACTOR", _in_ray_actor())
    """
)


def test_tensor_parallel_actor_gets_its_own_placement_group(tmp_path):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    info = json.loads(line.split(" ", 1)[1])
    assert info["in_actor"] is True
    assert info["bundles"] == [{"GPU": 1.0, "CPU": 1.0}, {"GPU": 1.0, "CPU": 1.0}]
    # both workers ran inside the actor's group, on different GPUs
    assert [w[0] for w in info["workers"]] == [info["pg"], info["pg"]]
    assert sorted(g for w in info["workers"] for g in w[1]) == [0, 1]
    assert "DRIVER_IN_ACTOR False" in proc.stdout
