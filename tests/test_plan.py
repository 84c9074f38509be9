"""Config composition and variant expansion, via Hydra's compose API on the real conf/."""

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from sweeps.config import OptimizerConfig, flatten, validate
from sweeps.errors import ConfigError
from sweeps.plan import Variant, expand_variants, group_by_architecture, run_params


def test_optimizer_study_defaults(make_cfg) -> None:
    cfg = make_cfg("+experiment=optimizers")
    assert cfg.study == "optimizers"
    assert cfg.train.iterations == 2000 and cfg.train.batch_size == 128
    assert list(cfg.model.hidden_sizes) == [100, 100, 100, 100]
    variants = expand_variants(cfg)
    assert [v.name for v in variants] == ["sgd", "momentum", "adagrad", "rmsprop", "adam"]
    by_name = {v.name: v.optimizer for v in variants}
    assert by_name["sgd"].lr == 0.01
    assert (by_name["momentum"].lr, by_name["momentum"].momentum) == (0.01, 0.9)
    assert (by_name["adagrad"].lr, by_name["adagrad"].eps) == (0.01, 1e-7)
    assert (by_name["rmsprop"].lr, by_name["rmsprop"].decay_rate) == (0.01, 0.99)
    adam = by_name["adam"]
    assert (adam.lr, adam.beta1, adam.beta2) == (0.001, 0.9, 0.999)
    assert all(v.model["init"] == "he" and v.model["activation"] == "relu" for v in variants)
    assert len(group_by_architecture(variants)) == 1


def test_command_line_overrides_reach_variants(make_cfg) -> None:
    cfg = make_cfg(
        "+experiment=optimizers",
        "variants.adam.optimizer.lr=0.002",
        "~variants.rmsprop",
        "model.init=xavier",
        "seed=5",
    )
    variants = {v.name: v for v in expand_variants(cfg)}
    assert "rmsprop" not in variants
    assert variants["adam"].optimizer.lr == 0.002
    assert all(v.model["init"] == "xavier" and v.seed == 5 for v in variants.values())


def test_without_experiment_one_variant_from_the_optimizer_group(make_cfg) -> None:
    variants = expand_variants(make_cfg("optimizer=adam"))
    assert [(v.name, v.optimizer.lr) for v in variants] == [("adam", 0.001)]


def test_variant_params_mark_the_hyperparameters_the_rule_does_not_read(make_cfg) -> None:
    variants = expand_variants(make_cfg("+experiment=optimizers"))
    params = variants[0].params()
    assert params["optimizer.name"] == "sgd" and params["optimizer.lr"] == 0.01
    assert params["optimizer.beta1"] == "-"
    assert params["model.init"] == "he"
    assert variants[-1].params()["optimizer.beta1"] == 0.9
    assert len({tuple(v.params()) for v in variants}) == 1


def test_run_params_give_every_architecture_the_same_keys() -> None:
    mlp = Variant("mlp", {"name": "mlp", "hidden": [50]}, OptimizerConfig(), 0)
    cnn = Variant("cnn", {"name": "cnn", "channels": 8}, OptimizerConfig(), 0)
    params = run_params([mlp, cnn])
    assert params["mlp"].keys() == params["cnn"].keys()
    assert params["mlp"]["model.channels"] == "-" and params["cnn"]["model.hidden"] == "-"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("variants.sgd.optimizer.name=lbfgs", "variants.sgd.optimizer.name='lbfgs'.*adam"),
        (
            "model.activation=gelu",
            "model=mlp .*unknown activation 'gelu'; valid: relu, sigmoid, tanh",
        ),
        ("model.init=glorot", "model.init='glorot'.*std, xavier, he"),
        (
            "variants.adam.optimizer.lr=-1",
            "variants.adam.optimizer.lr=-1.0 must be a positive number",
        ),
        ("+variants.sgd.train={iterations: 3}", "variants.sgd"),
    ],
)
def test_bad_variant_values_name_key_value_and_choices(make_cfg, override, message) -> None:
    cfg = make_cfg("+experiment=optimizers", override)
    with pytest.raises(ConfigError, match=message):
        expand_variants(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [("device=tpu", "device='tpu'.*auto, cpu, cuda")],
)
def test_bad_top_level_values(make_cfg, override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(override))


def test_schema_rejects_unknown_keys_and_wrong_types(make_cfg) -> None:
    with pytest.raises(ConfigCompositionException):
        make_cfg("train.iteratons=5")
    with pytest.raises((ConfigCompositionException, ValidationError)):
        make_cfg("train.iterations=many")


def test_variant_names_come_from_name_or_key_and_must_be_unique(make_cfg) -> None:
    cfg = make_cfg("+experiment=optimizers", "+variants.adam.name=adam-0.001")
    assert expand_variants(cfg)[-1].name == "adam-0.001"
    clash = make_cfg("+experiment=optimizers", "+variants.adam.name=sgd")
    with pytest.raises(ConfigError, match="unique"):
        expand_variants(clash)


def test_grid_crosses_variants_with_every_point(make_cfg) -> None:
    cfg = make_cfg(
        "+experiment=optimizers", "~variants.momentum", "~variants.adagrad", "~variants.rmsprop"
    )
    # As an experiment file writes it (dotted keys do not survive Hydra's override parser).
    cfg.grid = OmegaConf.create(
        "{model.init: [he, xavier], model.init_scale: '${logspace:0,-2,3}'}"
    )
    variants = expand_variants(cfg)
    assert len(variants) == 2 * 2 * 3
    assert variants[0].name == "sgd he 1"
    assert variants[-1].name == "adam xavier 0.01"
    assert variants[-1].optimizer.name == "adam" and variants[-1].model["init"] == "xavier"


def test_flatten_dotted_keys_keep_lists() -> None:
    tree = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}
    assert flatten(tree) == {"a.b": 1, "a.c.d": [1, 2], "e": {}, "f": None}
