from pathlib import Path

import pytest

from pipeline.config import ConfigError, RunConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_defaults_are_the_cpu_profile():
    cfg = load_config()
    assert cfg.render.dpi == 185
    assert cfg.paddle.engine == "onnxruntime"
    assert cfg.paddle.det_model == "PP-OCRv5_mobile_det"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    assert isinstance(load_config(path), RunConfig)


def test_unknown_key_is_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("paddle:\n  batchsize: 8\n")
    with pytest.raises(ConfigError, match=r"paddle\.batchsize: Extra inputs are not permitted"):
        load_config(f)


def test_bad_value_is_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("render:\n  dpi: 5000\npaddle:\n  num_gpus: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "render.dpi" in str(err.value) and "paddle.num_gpus" in str(err.value)


def test_overrides_use_dotted_keys():
    cfg = load_config(overrides={"paddle.actors": 3, "text_layer.mode": "off"})
    assert cfg.paddle.actors == 3 and cfg.text_layer.mode == "off"


def test_missing_file_says_where_to_look():
    with pytest.raises(ConfigError, match="configs/"):
        load_config("no/such.yaml")
