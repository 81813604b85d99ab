from pathlib import Path

import pytest
import yaml

from pipeline.config import _YAML_WORDS, ConfigError, RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if p.name != "serve.yaml")  # serve.yaml: Serve's schema (test_serve)


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


def _choice_fields(model=None, prefix=""):
    """Every choice (Literal) field of the config, as (dotted key, choices)."""
    from pydantic import BaseModel

    from pipeline.config import RunConfig, literal_choices

    model = model or RunConfig
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _choice_fields(annotation, f"{prefix}{name}.")
        elif literal_choices(annotation):
            yield f"{prefix}{name}", literal_choices(annotation)


CHOICE_FIELDS = list(_choice_fields())


def test_every_choice_field_is_covered():
    keys = [k for k, _ in CHOICE_FIELDS]
    assert "text_layer.mode" in keys and "paddle.device" in keys and len(keys) >= 8


@pytest.mark.parametrize("key, choices", CHOICE_FIELDS, ids=[k for k, _ in CHOICE_FIELDS])
@pytest.mark.parametrize("word", ["off", "on", "no", "yes", "false", "true"])
def test_unquoted_yaml_booleans_in_choice_fields(tmp_path, key, choices, word):
    """What a user writes unquoted from a comment: the choice it names, or a refusal that says to quote it."""
    section, _, leaf = key.rpartition(".")
    text = f"{section}:\n  {leaf}: {word}\n" if section else f"{leaf}: {word}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    read = yaml.safe_load(text)
    value = (read[section] if section else read)[leaf]
    assert isinstance(value, bool)  # the YAML 1.1 trap is real
    meant = next((w for w in _YAML_WORDS[value] if w in choices), None)  # off/no/false all mean "off" where it exists
    if meant:
        config = load_config(path)
        node = getattr(config, section) if section else config
        assert getattr(node, leaf) == meant and (word not in choices or meant == word)
    else:
        with pytest.raises(ConfigError) as e:
            load_config(path)
        assert f"{key}: YAML read an unquoted" in str(e.value) and "quote the value" in str(e.value)
        assert f"boolean {str(read[section][leaf] if section else read[leaf]).lower()}" in str(e.value)


def test_shipped_config_comments_work_when_copied(tmp_path):
    """configs/cpu.yaml documents `mode: auto  # auto | off | force`: each spelling, unquoted, loads."""
    assert "auto | off | force" in (REPO / "configs" / "cpu.yaml").read_text()
    for word in ("auto", "off", "force", '"off"'):
        path = tmp_path / "c.yaml"
        path.write_text(f"text_layer:\n  mode: {word}\n")
        assert load_config(path).text_layer.mode == word.strip('"')


def test_a_serve_config_given_as_a_run_config_says_which_is_which():
    with pytest.raises(ConfigError, match="Ray Serve config .* configs/cpu.yaml"):
        load_config(REPO / "configs" / "serve.yaml")
