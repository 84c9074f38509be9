"""Claims: parsing, selecting variants, evaluating, and every error, on small synthetic results."""

import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from sweeps.claims import ClaimError, Results, evaluate, parse, parse_all, validate
from sweeps.errors import ConfigError

OPTIMIZERS = ["sgd", "momentum", "adagrad", "adam"]


def results(table: dict, params: dict | None = None, **kwargs) -> Results:
    """Results over the variants named by `table`'s first column's keys."""
    index = list(next(iter(table.values())))
    frame = pd.DataFrame({k: list(v.values()) for k, v in table.items()}, index=index)
    params = pd.DataFrame(params or {}, index=index)
    return Results(frame, params, **kwargs)


def optimizers() -> Results:
    losses = dict(zip(OPTIMIZERS, [0.6234, 0.07, 0.0301, 0.037433], strict=True))
    accuracies = dict(zip(OPTIMIZERS, [0.8, 0.9, 0.88, 0.91], strict=True))
    series = pd.DataFrame({"sgd": [2.3, 1.0, 0.6234], "momentum": [2.3, 0.5, np.nan]})
    return results(
        {"final_loss": losses, "test_acc": accuracies},
        {"optimizer.name": OPTIMIZERS, "optimizer.lr": [0.1, 0.01, 0.01, 1e-3]},
        series={"loss": series},
    )


def held(check: str, res: Results) -> bool:
    [verdict] = evaluate([parse("c", check)], res)
    return verdict.held


def error(check: str, res: Results | None = None) -> str:
    """The message of the ClaimError that parsing (and, given `res`, validating) raises."""
    with pytest.raises(ClaimError) as err:
        validate([parse("c", check)], res or optimizers())
    message = str(err.value)
    assert message.startswith("claims.c: ")
    return message


# The language


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("2 + 3 * 4 >= 14", True),
        ("2 + 3 * 4 > 14", False),
        ("(2 + 3) * 4 >= 20", True),
        ("10 - 4 - 3 >= 3", True),  # left-associative
        ("12 / 2 / 3 <= 2", True),
        ("--3 >= 3", True),
        ("-2 * 3 < -5", True),
        ("1e-3 < 0.0011 < 3.0e-2 <= .03", True),
        ("1 < 2 < 2", False),  # chained: 1 < 2 and 2 < 2
        ("1 < 3 > 2", True),
        ("1 < 2 and 3 < 2", False),
        ("1 < 2 and 2 < 3 and 0 <= 0", True),
    ],
)
def test_numbers_precedence_and_comparisons(check: str, expected: bool) -> None:
    assert held(check, optimizers()) is expected


def test_a_number_broadcasts_against_a_vector() -> None:
    res = optimizers()
    assert held("final_loss[momentum, adagrad, adam] < 0.1", res)
    assert not held("final_loss < 0.1", res)  # no selector: every variant, sgd included
    assert held("final_loss[*] * 100 > 3", res)
    assert held("final_loss[momentum, adagrad] - final_loss[adam] < 0.05", res)


def test_vectors_of_one_length_compare_element_wise() -> None:
    res = optimizers()
    assert held("test_acc[adagrad, adam] > test_acc[sgd, momentum]", res)
    assert not held("test_acc[adagrad, adam] > test_acc[momentum, sgd]", res)


def test_operands_of_different_lengths_fail_validation_naming_both() -> None:
    message = error("final_loss[sgd, adam] < final_loss[momentum, adagrad, adam]")
    assert "final_loss[sgd, adam] has 2 values" in message
    assert "final_loss[momentum, adagrad, adam] has 3" in message
    assert "has 2 values" in error("final_loss[sgd, adam] + final_loss[*] > 0")


def test_a_param_is_read_when_the_table_has_no_such_column() -> None:
    assert held("optimizer.lr[sgd] / optimizer.lr[adam] >= 100", optimizers())


def test_an_alias_reaches_a_variant_whose_name_has_an_equals_sign() -> None:
    res = results(
        {"final_loss": {"std=0.01": 2.3, "std=0.1": 0.4}},
        {"model.init_scale": [0.01, 0.1]},
        aliases={"std": "std=0.01", "big": "std=0.1"},
    )
    assert held("final_loss[std] > 2 * final_loss[big]", res)
    assert held("final_loss[std=0.01] > 2 * final_loss[std=0.1]", res)


def grid() -> Results:
    """2 x 3 variants: batchnorm on/off x three learning rates."""
    names = [f"bn={bn} lr={lr}" for bn in ("true", "false") for lr in ("1e-3", "1.85e-4", "0.1")]
    return results(
        {"train_acc": dict(zip(names, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], strict=True))},
        {
            "model.batchnorm": [True, True, True, False, False, False],
            "optimizer.lr": [1e-3, 1.8512e-4, 0.1] * 2,
            "model.activation": ["relu", "tanh", "relu"] * 2,
        },
    )


def test_key_value_selectors_pick_the_variants_with_that_param() -> None:
    def selected(ref: str) -> list[float]:
        return evaluate([parse("c", f"{ref} > 0")], grid())[0].numbers[ref]

    assert selected("train_acc[model.batchnorm=true]") == [0.9, 0.8, 0.7]
    assert selected("train_acc[model.batchnorm = false]") == [0.6, 0.5, 0.4]
    assert selected("train_acc[optimizer.lr=1.85e-4]") == [0.8, 0.5]  # typed short: within 0.1%
    assert selected("train_acc[model.activation=relu]") == [0.9, 0.7, 0.6, 0.4]
    # items are unioned in the order listed, a variant listed twice counted once; a name wins
    # over KEY=VALUE reading of its `=`
    both = "train_acc[model.batchnorm=false, bn=true lr=0.1, model.activation=tanh]"
    assert selected(both) == [0.6, 0.5, 0.4, 0.7, 0.8]


def test_a_key_value_selector_that_selects_nothing_is_an_error() -> None:
    message = error("train_acc[model.activation=gelu] > 0", grid())
    assert "no variant has model.activation=gelu" in message
    assert "model.activation takes: relu, tanh" in message


def test_best_n_takes_the_highest_scores_in_the_studys_order() -> None:
    res = results(
        {"val_acc": {"t0": 0.5, "t1": 0.9, "t2": 0.7, "t3": 0.9, "t4": 0.1}},
        {"optimizer.lr": [1.0, 2.0, 3.0, 4.0, 5.0]},
        score="val_acc",
    )
    [verdict] = evaluate([parse("c", "optimizer.lr[best 3] > 0")], res)
    assert verdict.numbers == {"optimizer.lr[best 3]": [2.0, 3.0, 4.0]}
    [verdict] = evaluate([parse("c", "optimizer.lr[best 2, t0, best 1] > 0")], res)
    assert verdict.numbers == {"optimizer.lr[best 2, t0, best 1]": [2.0, 4.0, 1.0]}
    [verdict] = evaluate([parse("c", "optimizer.lr[best 9] > 0")], res)
    assert len(verdict.numbers["optimizer.lr[best 9]"]) == 5
    assert "this study has none" in error("final_loss[best 2] > 0")


def series_results() -> Results:
    loss = pd.DataFrame(
        {"a": [4.0, 3.0, 2.0, 1.0], "b": [5.0, 6.0, np.nan, np.nan], "c": [np.nan] * 4}
    )
    return results({"final_loss": {"a": 1.0, "b": 6.0, "c": np.nan}}, series={"loss": loss})


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("last(loss[a, b])", [1.0, 6.0]),  # NaN after b's end dropped
        ("max(loss[a, b])", [4.0, 6.0]),
        ("min(loss[a, b])", [1.0, 5.0]),
        ("mean(loss[a, b])", [2.5, 5.5]),
        ("mean(loss[a, b], 2)", [1.5, 5.5]),
        ("mean(loss[a, b], 3)", [2.0, 5.5]),  # b has fewer points: the mean of all
        ("max(loss[a], 2)", [2.0]),
    ],
)
def test_series_functions(call: str, expected: list[float]) -> None:
    [verdict] = evaluate([parse("c", f"{call} > -1")], series_results())
    assert verdict.numbers == {call: expected}
    assert verdict.held


def test_a_series_of_only_nan_is_nan_and_fails() -> None:
    [verdict] = evaluate([parse("c", "last(loss) >= 0")], series_results())
    assert math.isnan(verdict.numbers["last(loss)"][2])
    assert not verdict.held


def test_nan_makes_a_claim_fail_whichever_way_it_compares() -> None:
    res = series_results()
    assert not held("final_loss[c] > 0", res)
    assert not held("final_loss[c] <= 0", res)
    assert held("count(final_loss > 0) <= 2", res)


def test_count_is_how_many_elements_a_test_holds_for() -> None:
    res = optimizers()
    [verdict] = evaluate([parse("c", "count(final_loss < 0.05) >= 2")], res)
    assert verdict.held
    assert verdict.numbers == {"count(final_loss < 0.05)": [2.0]}
    assert held("count(0.05 < final_loss < 0.1) <= 1", res)
    assert held("count(final_loss[sgd] > 3 * final_loss[momentum, adagrad, adam]) >= 3", res)
    assert not held("count(final_loss > 1) > 0", res)


def test_importance_reads_the_searchs_importances() -> None:
    res = optimizers()
    res = Results(res.table, res.params, importances={"optimizer.lr": 0.8, "seed": 0.05})
    assert held("importance(seed) < importance(optimizer.lr) / 10", res)
    message = error("importance(optimizer.momentum) > 0", res)
    assert "available: optimizer.lr, seed" in message
    assert "this study has none" in error("importance(optimizer.lr) > 0")


# Verdicts


def test_verdict_numbers_leave_out_literals_and_describe_them_on_one_line() -> None:
    check = "final_loss[sgd] >= 3 * final_loss[momentum, adagrad, adam] and 2 * -1 < 1"
    [verdict] = evaluate([parse("sgd_is_slow", check, "SGD is slowest")], optimizers())
    assert verdict.held
    assert verdict.claim.says == "SGD is slowest"
    assert verdict.numbers == {
        "final_loss[sgd]": [0.6234],
        "3 * final_loss[momentum, adagrad, adam]": pytest.approx([0.21, 0.0903, 0.112299]),
    }
    assert verdict.describe() == (
        "final_loss[sgd] = 0.6234; 3 * final_loss[momentum, adagrad, adam] = 0.2100, 0.0903, 0.1123"
    )


def test_describe_summarises_long_vectors_and_spacing_is_normalised() -> None:
    res = results({"x": {f"v{i}": float(i) for i in range(6)}})
    [verdict] = evaluate([parse("c", "x   *  2>=0 and x[ v1 , v2]>0")], res)
    assert verdict.describe() == ("x * 2 = 6 values, min 0.0000, max 10; x[ v1 , v2] = 1, 2")


# Errors


@pytest.mark.parametrize(
    ("check", "column", "problem"),
    [
        ("foo(loss) > 1", 1, "unknown function 'foo'"),
        ("final_loss > 1 or test_acc > 1", 16, "'or' is not supported"),
        ("final_loss == 1", 12, "'==' is not supported"),
        ("final_loss != 1", 12, "'!=' is not supported"),
        ("final_loss[sgd > 1", 11, "unbalanced '['"),
        ("final_loss] > 1", 11, "unbalanced ']'"),
        ("(final_loss > 1", 13, "the '(' at column 1 is unbalanced"),
        ("final_loss > 1)", 15, "unbalanced ')'"),
        ("last(loss > 1", 11, "expected ')' to close last("),
        ("final_loss > 1 2", 16, "expected 'and' or the end of the claim, found '2'"),
        ("final_loss > 1 and", 19, "found the end"),
        ("final_loss[sgd,] > 1", 11, "empty item in the selector"),
        ("final_loss[] > 1", 11, "empty item in the selector"),
        ("final_loss[best 0] > 1", 11, "'best 0': N must be a positive whole number"),
        ("final_loss[best x] > 1", 11, "N must be a positive whole number"),
        ("final_loss", 11, "expected a comparison"),
        ("final_loss > 1 $", 16, "unexpected character '$'"),
        ("mean(loss, 0) > 1", 12, "positive whole number"),
        ("mean(loss, 1.5) > 1", 12, "positive whole number"),
        ("last(2) > 1", 6, "expected a name"),
        ("last(max(loss)) > 1", 6, "expected a name"),
        ("importance(optimizer.lr[sgd]) > 0", 24, "expected ')' to close importance("),
        ("max > 1", 5, "expected '(' after max"),
        ("", 1, "expected a number, a name or '('"),
    ],
)
def test_syntax_errors_show_the_claim_and_the_column(check: str, column: int, problem: str) -> None:
    with pytest.raises(ClaimError) as err:
        parse("bad", check)
    message = str(err.value)
    assert message.startswith(f"claims.bad: at column {column} of {check!r}: ")
    assert problem in message
    assert isinstance(err.value, ConfigError)


def test_an_unknown_variant_lists_the_variants_and_their_aliases() -> None:
    res = results({"gap": {"none": 0.1, "dropout=0.2": 0.05}}, aliases={"d2": "dropout=0.2"})
    message = error("gap[none] - gap[d5] > 0", res)
    assert "unknown variant 'd5' in gap[d5]" in message
    assert "variants (aliases): none, dropout=0.2 (d2)" in message
    message = error("gap[model.dropout=0.5] > 0", res)
    assert "'model.dropout' is not one; params: " in message


def test_an_unknown_metric_lists_the_columns_and_params() -> None:
    message = error("final_los[sgd] > 0")
    assert "unknown metric 'final_los' in final_los[sgd]" in message
    assert "valid: final_loss, test_acc; params: optimizer.name, optimizer.lr" in message
    assert "loss is a series" in error("loss[sgd] > 0")


def test_a_series_function_needs_a_series() -> None:
    message = error("last(final_loss[sgd]) > 0")
    assert "'final_loss' is not a series; series: loss" in message
    res = optimizers()
    res = Results(res.table, res.params)
    assert "there is no series here" in error("last(loss) > 0", res)


def test_a_non_numeric_param_cannot_be_compared() -> None:
    assert "optimizer.name[sgd] is not numeric" in error("optimizer.name[sgd] > 0")


# Config


def test_parse_all_reads_the_claims_of_a_config() -> None:
    cfg = OmegaConf.create(
        {
            "slow": {"says": "SGD is slow", "check": "final_loss[sgd] > 0.5"},
            "fast": {"check": "final_loss[adam] < 0.5"},
        }
    )
    claims = parse_all(cfg)
    assert [(c.name, c.says, c.check) for c in claims] == [
        ("slow", "SGD is slow", "final_loss[sgd] > 0.5"),
        ("fast", "", "final_loss[adam] < 0.5"),
    ]
    assert all(v.held for v in evaluate(claims, optimizers()))


@pytest.mark.parametrize(
    "entry", ["final_loss > 0", {"says": "x"}, {"check": 3}, {"check": "x > 0", "chek": "y"}]
)
def test_parse_all_rejects_a_malformed_entry(entry: object) -> None:
    with pytest.raises(ClaimError, match=r"^claims\.bad: expected \{says"):
        parse_all({"bad": entry})


def test_validate_names_the_failing_claim_on_dry_results() -> None:
    dry = optimizers()
    dry = Results(dry.table * 0, dry.params, {"loss": dry.series["loss"] * 0})
    good = parse("good", "final_loss[sgd] / final_loss[adam] >= 3")  # 0 / 0: no warning
    validate([good], dry)
    with pytest.raises(ClaimError, match=r"^claims\.typo: unknown variant 'sgdd'"):
        validate([good, parse("typo", "final_loss[sgdd] > 0")], dry)


# The studies' claims


def test_optimizers_study() -> None:
    check = "final_loss[sgd] >= 3 * final_loss[momentum, adagrad, adam]"
    assert held(check, optimizers())


def test_init_study() -> None:
    names = ["std=0.01", "he", "xavier"]
    loss = pd.DataFrame({"std=0.01": [2.31, 2.302, 2.301], "he": [2.3, 0.6, 0.3]})
    loss["xavier"] = [2.3, 0.7, 0.4]
    res = results(
        {"final_loss": dict(zip(names, [2.301, 0.3, 0.4], strict=True))},
        series={"loss": loss},
        aliases={"std": "std=0.01"},
    )
    check = "min(loss[std]) > 2.0 and final_loss[he] < final_loss[xavier]"
    assert held(check, res)
    [verdict] = evaluate([parse("c", check.replace("he]", "xavier]"))], res)
    assert not verdict.held


def test_batchnorm_study() -> None:
    lrs = np.logspace(-4, 0, 12)
    names = [f"bn={bn} lr={lr:.3g}" for bn in (True, False) for lr in lrs]
    on, off = np.linspace(0.9, 0.95, 12), np.linspace(0.8, 0.96, 12)  # off wins at two lrs
    res = results(
        {"train_acc": dict(zip(names, [*on, *off], strict=True))},
        {"model.batchnorm": [True] * 12 + [False] * 12, "optimizer.lr": [*lrs, *lrs]},
    )
    check = "count(train_acc[model.batchnorm=true] > train_acc[model.batchnorm=false]) >= 10"
    [verdict] = evaluate([parse("c", check)], res)
    assert verdict.held
    assert verdict.numbers == {
        "count(train_acc[model.batchnorm=true] > train_acc[model.batchnorm=false])": [10.0]
    }
    assert not held(check.replace("10", "11"), res)


def test_dropout_study() -> None:
    res = results(
        {"gap": {"none": 0.08, "dropout=0.2": 0.04, "dropout=0.5": 0.02}},
        {"model.dropout": [0.0, 0.2, 0.5]},
        aliases={"d2": "dropout=0.2", "d5": "dropout=0.5"},
    )
    assert held("gap[none] - gap[d2] >= 0.03", res)
    assert not held("gap[d2] - gap[d5] >= 0.03", res)


def test_search_study() -> None:
    lrs = np.logspace(-4, -1, 40)
    val_acc = 1 - np.abs(np.log10(lrs) + 2)  # best around 1e-2
    res = results(
        {"val_acc": {f"trial {i}": v for i, v in enumerate(val_acc)}},
        {"optimizer.lr": lrs, "optimizer.weight_decay": np.linspace(0, 1e-3, 40)},
        score="val_acc",
        importances={"optimizer.lr": 0.9, "optimizer.weight_decay": 0.1},
    )
    check = (
        "1e-3 <= optimizer.lr[best 10] <= 3e-2"
        " and importance(optimizer.weight_decay) < importance(optimizer.lr)"
    )
    [verdict] = evaluate([parse("search", check)], res)
    assert verdict.held
    assert list(verdict.numbers) == [
        "optimizer.lr[best 10]",
        "importance(optimizer.weight_decay)",
        "importance(optimizer.lr)",
    ]
    assert not held("1e-3 <= optimizer.lr[best 25] <= 3e-2", res)


def test_a_test_over_no_variant_does_not_hold() -> None:
    """A search with no complete trial selects nothing: its claims fail, not hold vacuously."""
    empty = Results(
        table=pd.DataFrame({"val_acc": []}, dtype=float),
        params=pd.DataFrame({"optimizer.lr": []}, dtype=float),
        score="val_acc",
    )
    (verdict,) = evaluate([parse("band", "1e-3 <= optimizer.lr[best 10] <= 3e-2")], empty)
    assert not verdict.held and verdict.numbers == {"optimizer.lr[best 10]": []}
