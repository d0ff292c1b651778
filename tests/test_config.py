"""Strict config loading: unknown keys, types, choices, ranges, overrides, round trip."""

import pytest

from seqattn.config import (
    Config,
    ConfigError,
    all_keys,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)


def test_defaults_are_resolved():
    cfg = config_from_dict({"model": {"arch": "rnn", "attention": "luong"}})
    assert cfg.model.score == "general"            # Luong's default score, filled in
    assert config_from_dict({"model": {"arch": "rnn"}}).model.score == "additive"
    assert cfg.training.adam_betas == (0.9, 0.98)


def test_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.model.hidden_size = 3  # type: ignore[misc]


@pytest.mark.parametrize("raw, message", [
    ({"model": {"hiden_size": 3}}, "unknown config key 'model.hiden_size'; did you mean "
                                   "'model.hidden_size'?"),
    ({"model": {"batch_tokens": 3}}, "did you mean 'training.batch_tokens'?"),
    ({"modle": {}}, "unknown config key 'modle'; did you mean 'model'?"),
    ({"model": {"arch": "cnn"}}, "model.arch must be one of: rnn, transformer; got 'cnn'"),
    ({"model": {"hidden_size": "big"}}, "model.hidden_size must be an integer, got 'big'"),
    ({"model": {"hidden_size": 1.5}}, "model.hidden_size must be an integer"),
    ({"model": {"hidden_size": True}}, "model.hidden_size must be an integer, got bool True"),
    ({"model": {"hidden_size": 0}}, "model.hidden_size must be >= 1, got 0"),
    ({"model": {"dropout": 1.5}}, "model.dropout must be between 0 and 0.9, got 1.5"),
    ({"model": {"tie_embeddings": "yes"}}, "model.tie_embeddings must be true or false"),
    ({"model": {"hidden_size": 30, "heads": 4}}, "must be divisible by model.heads"),
    ({"model": {"arch": "rnn", "attention": "bahdanau", "score": "dot"}}, "Bahdanau attention is"),
    ({"model": {"arch": "rnn", "attention": "luong", "score": "additive"}},
     "choose one of: concat, dot, general"),
    ({"training": {"adam_betas": [0.9]}}, "training.adam_betas must be a list of 2 numbers"),
    ({"training": {"device": "gpu"}}, "training.device 'gpu' is not valid"),
    ({"decoding": {"beam_size": 2, "n_best": 3}}, "cannot exceed decoding.beam_size"),
    ({"model": 5}, "'model' must be a mapping of keys"),
])
def test_bad_values_name_path_and_choices(raw, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert message in str(info.value)


def test_overrides_go_through_the_same_checks():
    cfg = config_from_dict({}, ["model.hidden_size=512", "training.clip_norm=null",
                                "training.adam_betas=[0.9, 0.999]", "data.train_src=a b.txt"])
    assert cfg.model.hidden_size == 512
    assert cfg.training.clip_norm is None
    assert cfg.training.adam_betas == (0.9, 0.999)
    assert cfg.data.train_src == "a b.txt"
    with pytest.raises(ConfigError, match="did you mean 'model.hidden_size'"):
        config_from_dict({}, ["model.hiden_size=3"])
    with pytest.raises(ConfigError, match="must be an integer, got 'x'"):
        config_from_dict({}, ["model.hidden_size=x"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        config_from_dict({}, ["model.hidden_size.x=1"])


@pytest.mark.parametrize("text", ["model", "model=1", "=1", "model.hidden_size", ".a=1"])
def test_malformed_override(text):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(text)


def test_yaml_round_trip(tmp_path):
    cfg = config_from_dict({"model": {"arch": "rnn", "cell": "lstm"}}, ["decoding.beam_size=7"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(path) == cfg


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  arch: [rnn\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml' line \d+, column \d+: invalid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(listy)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_config(empty) == Config()


def test_all_keys_lists_dotted_paths():
    keys = all_keys()
    assert "model.hidden_size" in keys and "decoding.beam_size" in keys
    assert len(keys) == len(set(keys))


def test_nan_is_refused_everywhere_a_number_is_checked():
    """NaN compares false with every bound, so a range check alone lets it through."""
    import math

    from seqattn.config import DecodeConfig

    with pytest.raises(ConfigError, match="length_penalty must be a number, got NaN"):
        DecodeConfig().override(length_penalty=math.nan)
    with pytest.raises(ConfigError, match="max_len_a"):
        DecodeConfig().override(max_len_a=float("nan"))
