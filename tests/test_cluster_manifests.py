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
