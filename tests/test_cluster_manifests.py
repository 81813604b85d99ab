"""What a platform team deploys, checked by the schemas that ship with the tools (never only by eye)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def test_launcher_yaml_passes_rays_own_validation():
    # the checks `ray up` runs before it calls the cloud: the provider's defaults filled in, then
    # ray-schema.json inside the ray wheel (unknown keys refused)
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "launcher" / "aws-gpu.yaml").read_text())
    validate_config(prepare_config(config))
    typo = {**config, "available_node_types": {**config["available_node_types"], "gpu_l4": {
        **config["available_node_types"]["gpu_l4"], "max_worker": 3}}}
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):  # the check bites on a typo
        validate_config(prepare_config(typo))
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}  # the head takes no OCR work
    assert sum(t.get("max_workers", 0) for t in types.values()) <= config["max_workers"] * 2
    assert config["docker"]["image"].startswith("hybridocr")


def test_the_image_installs_through_the_one_install_path():
    text = (CLUSTER / "Dockerfile").read_text()
    assert "FROM ${RAY_IMAGE}" in text and "rayproject/ray:2.60.0" in text
    assert "VLM=gpu bash cluster/install.sh" in text
    for path in ("pipeline", "actors", "configs", "cluster/install.sh", "pyproject.toml"):  # what the install needs
        assert f"COPY --chown=ray:users {path}" in text and (CLUSTER.parent / path).exists(), path


KUBERAY = CLUSTER / "kuberay"
IN_IMAGE = "/home/ray/hybridocr/"  # cluster/Dockerfile's WORKDIR: the repository's files in the image


def manifest(name: str) -> dict:
    return yaml.safe_load((KUBERAY / name).read_text())


def repo_path(path: str) -> Path:
    assert path.startswith(IN_IMAGE), path
    return CLUSTER.parent / path[len(IN_IMAGE):]


@pytest.mark.parametrize("name, kind", [("rayjob.yaml", "RayJob"), ("rayservice.yaml", "RayService")])
def test_kuberay_manifests_pass_the_v1_api_schema(name, kind):
    from tests.kuberay_schema import validator

    doc = manifest(name)
    check = validator(kind)
    check.validate(doc)
    cluster = doc["spec"].get("rayClusterSpec") or doc["spec"]["rayClusterConfig"]
    typo = {**doc, "spec": {**doc["spec"], "shutdownAfterJobFinish": True}}  # the checks bite
    assert any("shutdownAfterJobFinish" in e.message for e in check.iter_errors(typo))
    worker = cluster["workerGroupSpecs"][0]
    container = {**worker["template"]["spec"]["containers"][0], "resource": {}}  # Kubernetes' strict pod schema
    bad = {**doc, "spec": {**doc["spec"], ("rayClusterSpec" if kind == "RayJob" else "rayClusterConfig"): {
        **cluster, "workerGroupSpecs": [{**worker, "template": {"spec": {**worker["template"]["spec"], "containers": [container]}}}]}}}
    assert any("'resource' was unexpected" in e.message for e in check.iter_errors(bad))

    import ray

    assert cluster["rayVersion"] == ray.__version__  # the image's Ray is the one tested here
    assert f"rayproject/ray:{ray.__version__}" in (CLUSTER / "Dockerfile").read_text()
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # GPU-less head, no OCR work on it
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {"hybridocr:latest"}
    # Ray 2.60's token auth: KubeRay gives the token to the Ray pods; the submitter reads the same Secret
    assert cluster["authOptions"]["mode"] == "token"
    if kind == "RayJob":
        env = {e["name"]: e for e in doc["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == cluster["authOptions"]["secretName"]


def gpu_groups(cluster: dict, config) -> dict:
    """Each pool's GPUs in the manifest: its worker group picked by the node selector of its card."""
    out = {}
    for pool, kind in (("paddle", config.paddle.accelerator_type), ("vlm", config.vlm.accelerator_type)):
        (group,) = [g for g in cluster["workerGroupSpecs"]
                    if kind.lower() in "".join(g["template"]["spec"].get("nodeSelector", {}).values()).lower()]
        per_pod = int(group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        out[pool] = (group, per_pod)
    return out


def test_the_rayjob_runs_hybridocr_on_its_groups():
    from pipeline.cli import build_parser, _overrides
    from pipeline.config import load_config

    doc = manifest("rayjob.yaml")
    spec, cluster = doc["spec"], doc["spec"]["rayClusterSpec"]
    argv = spec["entrypoint"].split()
    assert argv[0] == "hybridocr"
    args = build_parser().parse_args(argv[1:])  # the CLI of this commit accepts it
    assert args.command == "run" and all(i.startswith("s3://") for i in args.inputs) and args.out.startswith("s3://")
    config = load_config(repo_path(args.config), _overrides(args.set))
    assert config.mode == "hybrid" and spec["shutdownAfterJobFinishes"] and spec["backoffLimit"] >= 1
    groups = gpu_groups(cluster, config)
    paddle_group, paddle_gpus = groups["paddle"]
    vlm_group, vlm_gpus = groups["vlm"]
    for g in (paddle_group, vlm_group):  # a fixed cluster: the plan sizes the pools from what exists
        assert g["replicas"] == g["minReplicas"] == g["maxReplicas"]
    assert config.paddle.actors == paddle_group["replicas"] * paddle_gpus / config.paddle.num_gpus
    assert config.vlm.replicas == vlm_group["replicas"] * vlm_gpus / config.vlm.num_gpus
    # Ray's runtime-env validation of what the job is given
    from ray.runtime_env import RuntimeEnv

    RuntimeEnv(**yaml.safe_load(spec["runtimeEnvYAML"]))


def test_the_rayservice_serves_the_app_serve_builds():
    from ray.serve.schema import ServeDeploySchema

    from pipeline.config import load_config
    from pipeline.serve.app import app_builder
    from tests.conftest import deployments

    doc = manifest("rayservice.yaml")
    serve = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    (app,) = serve.applications
    args = {**app.args, "config": str(repo_path(app.args["config"]))}
    assert deployments(app_builder(args)) == {"Ingress", "PaddleReader", "VlmReader"}
    config = load_config(args["config"], dict(args["set"]))
    groups = gpu_groups(doc["spec"]["rayClusterConfig"], config)
    # Serve's replicas at most fit the pods KubeRay's autoscaler may add
    paddle_group, paddle_gpus = groups["paddle"]
    vlm_group, vlm_gpus = groups["vlm"]
    assert config.serve.paddle.max_replicas * config.paddle.num_gpus <= paddle_group["maxReplicas"] * paddle_gpus
    assert config.serve.vlm.max_replicas * config.vlm.num_gpus <= vlm_group["maxReplicas"] * vlm_gpus
    assert config.serve.paddle.min_replicas * config.paddle.num_gpus <= paddle_group["minReplicas"] * paddle_gpus
    assert doc["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"]
