"""Bad input from the command line: exit 2 and one line naming the key, the value and what
is valid, within seconds, before any data is loaded or any run opened."""

import time
from pathlib import Path

import pytest
from helpers import command

STUDY = ("+experiment=optimizers", "train.iterations=3")
SEARCH = ("+experiment=hparam_search", "train.epochs=1")
UNWRITABLE = "/proc/sweeps-nowhere"  # no process, root included, can create files in /proc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (*STUDY, "optimizer=foo"),
            "Could not find 'optimizer/foo' Available options in 'optimizer'",
        ),
        (("+experiment=nope",), "Could not find 'experiment/nope'"),
        (
            ("train.foo=1",),
            "Could not override 'train.foo'. To append to your config use +train.foo=1",
        ),
        (
            (*STUDY, "train.batch_size=abc"),
            "train.batch_size=abc (Value 'abc' of type 'str' could not",
        ),
        ((*STUDY, "optimizer=["), "no viable alternative at input '['"),
        (
            ("train.threads=zero",),
            "train.threads='zero' is not valid; give a positive number or auto",
        ),
        ((*STUDY, "train.batch_size=0"), "train.batch_size=0 must be a positive number"),
        (
            (*STUDY, "train.batch_size=100000000"),
            "model=mlp with train.batch_size=100000000 needs about",
        ),
        ((*STUDY, "optimizer.momentum=nan"), "optimizer.momentum=nan must be in [0, 1)"),
        ((*STUDY, "optimizer.beta1=1.5"), "optimizer.beta1=1.5 must be in [0, 1)"),
        ((*STUDY, "optimizer.eps=0"), "optimizer.eps=0.0 must be a positive number"),
        ((*STUDY, "dataset.split_seed=-1"), "dataset.split_seed=-1 must be in [0, 2^32)"),
        ((*STUDY, "tracking.experiment=''"), "tracking.experiment must be a non-empty name"),
        (
            (*STUDY, "tracking.system_metrics=maybe"),
            "tracking.system_metrics='maybe' is not valid; choose one of: auto, true, false",
        ),
        (("+experiment=optimizer_paths", "paths.steps=0"), "paths.steps=0 must be a positive"),
        (
            ("+experiment=suite", "suite.workers=0"),
            "suite.workers='0' is not valid; give a positive number or auto",
        ),
        (("+experiment=activations", "probe.samples=0"), "probe.samples=0 must be a positive"),
        (
            ("+experiment=batchnorm", "report.panels=foo"),
            "report.panels='foo' is not a variant key; valid: model._target_, model.activation",
        ),
        (
            (*STUDY, "claims.adaptive_rules_learn_faster.check='final_loss[sdg] > 1'"),
            "claims.adaptive_rules_learn_faster: unknown variant 'sdg' in final_loss[sdg]; "
            "variants (aliases): sgd, momentum",
        ),
        (
            (*STUDY, "+claims.mine.check='final_los[sgd] > 1'"),
            "claims.mine: unknown metric 'final_los' in final_los[sgd]; valid: final_loss,",
        ),
        (
            (*STUDY, "+claims.mine.check='final_loss[sgd] > 1 or 2'"),
            "claims.mine: at column 21 of 'final_loss[sgd] > 1 or 2': 'or' is not supported",
        ),
        (
            (*STUDY, "~variants.momentum"),
            "unknown variant 'momentum' in final_loss[momentum, adagrad, adam]; variants (aliases)"
            ": sgd, adagrad, rmsprop, adam; or '*', 'best N', KEY=VALUE over a param (to run "
            "without this claim: ~claims.adaptive_rules_learn_faster;",
        ),
        (
            (
                "+experiment=batchnorm",
                "claims.batchnorm_robust_to_init_scale.check="
                "'count(train_acc[model.batchnorm=maybe] > 0) >= 1'",
            ),
            "model.batchnorm=maybe",
        ),
        ((*STUDY, "seeds=[1,1]"), "seeds=[1, 1] repeats a seed"),
        ((*STUDY, "seeds=[]"), "seeds=[] names no seed"),
        ((*STUDY, "seeds=[-1]"), "seeds[0]=-1 must be in [0, 2^32)"),
        ((*SEARCH, "seeds=[1,2]"), "seeds=[1, 2] repeats training studies, not a search"),
        ((*SEARCH, "seed=-1"), "seed=-1 must be in [0, 2^32)"),
        ((*SEARCH, "train.batch_size=-5"), "train.batch_size=-5 must be a positive number"),
        ((*SEARCH, "search.workers=0"), "search.workers=0 must be a positive number"),
        ((*SEARCH, "search.grace=5"), "search.grace=5.0 must exceed search.heartbeat=10.0"),
        (
            (*SEARCH, "train.epochs=2", "search.pruner=median", "search.curves=false"),
            "search.pruner=median judges the curves that search.curves=false turns off",
        ),
        (
            ("tracking.uri=http://127.0.0.1:9/",),
            "tracking.uri=http://127.0.0.1:9/ is not reachable",
        ),
        (
            (*STUDY, f"tracking.uri=sqlite:///{UNWRITABLE}/mlflow.db"),
            "tracking.uri=sqlite:////proc/sweeps-nowhere/mlflow.db cannot be written",
        ),
        (
            (*SEARCH, f"search.storage=sqlite:///{UNWRITABLE}/optuna.db"),
            "search.storage=sqlite:////proc/sweeps-nowhere/optuna.db cannot be written",
        ),
        (
            (*SEARCH, "search.storage=postgresql://sweeps@127.0.0.1:9/none"),
            "postgresql://sweeps@127.0.0.1:9/none is not reachable",
        ),
    ],
)
def test_bad_input_exits_2_in_one_line_before_anything_runs(
    tmp_path: Path, data_cache: Path, args: tuple[str, ...], message: str
) -> None:
    started = time.monotonic()
    proc = command(
        tmp_path,
        "dataset.download=false",
        f"dataset.cache_dir={data_cache}",
        *args,
    )
    seconds = time.monotonic() - started
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or "error:" in line]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # Unreachable servers used to take 250 s (MLflow's retries), unwritable folders 105 s;
    # generous for a loaded machine, far below those.
    assert seconds < 40
    # Nothing recorded, nothing created beside the command.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
