"""A study's claims: what its textbook says the results show, checked against the results.

An experiment file states each finding as a claim: `says`, the finding in words, and `check`,
an expression over the study's results.

    claims:
      sgd_is_slowest:
        says: SGD's final loss is at least 3x the others'
        check: final_loss[sgd] >= 3 * final_loss[momentum, adagrad, adam]

The checks are parsed when the experiment is loaded and evaluated on a dry run of its variants
before any training, so a misspelt variant or metric fails at once, naming the valid ones;
after training they are evaluated on each seed's results. This module parses them itself,
never through Python's `eval`, so a claim can only read results:

    claim  := test ('and' test)*
    test   := expr CMP expr (CMP expr)*     CMP: < <= > >=; a <= b <= c is a <= b and b <= c
    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/') unary)*
    unary  := '-' unary | atom
    atom   := NUMBER | '(' expr ')' | call | ref
    ref    := NAME ['[' selector ']']       no selector: every variant
    call   := ('last' | 'max' | 'min' | 'mean') '(' ref [',' N] ')'
            | 'count' '(' test ')' | 'importance' '(' NAME ')'

- NUMBER: `3`, `0.03`, `1e-3`. NAME: letters, digits, `_`, `.`, `/`, starting with a letter
  or `_` (`final_loss`, `optimizer.lr`); as `a/b` is one name, divide with spaces: `a / b`.
  `and`, `or` and the function names are reserved.
- A selector's comma-separated items are unioned in the order listed: `*` (every variant), a
  variant's name or alias (`std=0.01`, `std`), `KEY=VALUE` (the variants whose param KEY is
  VALUE, read as YAML: `model.batchnorm=true`, `optimizer.lr=1e-3`; floats match to 0.1%),
  `best N` (the N variants with the highest score). Within an item, variants keep the study's
  order. A name is tried before `KEY=VALUE`; a name with a comma needs its alias.
- Every value is a vector with one element per selected variant; a NUMBER, `count` and
  `importance` have one element, which broadcasts. Arithmetic and comparisons are element-wise,
  on vectors of the same length.
- `NAME[sel]` is a column of the results table (final values: `final_loss`, `test_acc`, `gap`)
  or else a param (`optimizer.lr`). In `last`, `max`, `min` and `mean` it is a series (per epoch
  or per iteration: `loss`, `test_acc`, `gap`), NaN points dropped; `max(loss[sgd], 5)`
  reads only the last 5 points.
- `count(test)`: how many elements the test holds for. `importance(NAME)`: a search's
  importance of the param NAME.
- A test holds when every element of every comparison holds (NaN never does, nor does a
  comparison of no elements); a claim holds when all its tests hold. There is no `or`, `==`
  or `!=`.
"""

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml

from sweeps.errors import ConfigError
from sweeps.tables import format_number

SERIES_FUNCTIONS: dict[str, Callable[[np.ndarray], float]] = {
    "last": lambda points: points[-1],
    "max": np.max,
    "min": np.min,
    "mean": np.mean,
}
FUNCTIONS = (*SERIES_FUNCTIONS, "count", "importance")
RESERVED = ("and", "or", *FUNCTIONS)
COMPARISONS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
PARAM_TOLERANCE = 1e-3  # users type short forms of a variant's float param: 1.85e-4
SHOWN = 4  # a longer vector is described by its size, min and max

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_./]*)"
    r"|(?P<cmp><=|>=|<|>)"
    r"|(?P<op>[-+*/(),])"
    r"|(?P<selector>\[[^\[\]]*\])"
)
_BEST = re.compile(r"best\s+(.+)")


class ClaimError(ConfigError):
    """A claim cannot be parsed, or reads what the study does not have; names the claim."""


class _Unresolved(Exception):
    """What a claim reads is not in the results; `_verdict` adds the claim's name."""


@dataclass(frozen=True)
class Results:
    """One seed's results of a study, as its claims read them."""

    table: pd.DataFrame  # index: variant names, in the study's order; numeric columns
    params: pd.DataFrame  # index: the same names; each variant's params (mixed types allowed)
    series: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # name -> step x variant
    aliases: Mapping[str, str] = field(default_factory=dict)  # experiment key -> variant name
    score: str | None = None  # the table column `best N` ranks by, highest first
    importances: Mapping[str, float] = field(default_factory=dict)  # param -> importance


# The parsed tree: every node keeps its source text, for messages and verdicts.


@dataclass(frozen=True)
class _Number:
    text: str
    value: float

    def values(self, results: Results) -> np.ndarray:
        return np.array([self.value])


@dataclass(frozen=True)
class _Ref:
    text: str
    name: str
    selector: tuple[str | int, ...]  # '*', names, aliases, KEY=VALUE; an int N is `best N`

    def values(self, results: Results) -> np.ndarray:
        for frame in (results.table, results.params):
            if self.name in frame.columns:
                column = frame[self.name].loc[_select(self, results)]
                try:
                    return column.to_numpy(dtype=float)
                except (TypeError, ValueError):
                    raise _Unresolved(f"{self.text} is not numeric: {list(column)}") from None
        hint = ""
        if self.name in results.series:
            hint = f" ({self.name} is a series: read it with last, max, min or mean)"
        raise _Unresolved(
            f"unknown metric {self.name!r} in {self.text}; valid: "
            f"{', '.join(results.table.columns)}; params: {', '.join(results.params.columns)}"
            + hint
        )


@dataclass(frozen=True)
class _Series:
    text: str
    function: str
    ref: _Ref
    window: int | None  # only the last `window` points count

    def values(self, results: Results) -> np.ndarray:
        frame = results.series.get(self.ref.name)
        if frame is None:
            valid = ", ".join(results.series)
            raise _Unresolved(
                f"{self.text}: {self.ref.name!r} is not a series; "
                + (f"series: {valid}" if valid else "there is no series here")
            )
        reduce, out = SERIES_FUNCTIONS[self.function], []
        for variant in _select(self.ref, results):
            if variant not in frame.columns:
                raise _Unresolved(f"{self.text}: series {self.ref.name} has no {variant!r}")
            points = frame[variant].dropna().to_numpy(dtype=float)
            points = points[-self.window :] if self.window else points
            out.append(reduce(points) if points.size else math.nan)
        return np.array(out, dtype=float)


@dataclass(frozen=True)
class _Negative:
    text: str
    operand: "_Node"

    def values(self, results: Results) -> np.ndarray:
        return -self.operand.values(results)


@dataclass(frozen=True)
class _Binary:
    text: str
    op: str
    left: "_Node"
    right: "_Node"

    def values(self, results: Results) -> np.ndarray:
        left, right = self.left.values(results), self.right.values(results)
        _check_lengths([self.left, self.right], [left, right])
        return ARITHMETIC[self.op](left, right)


@dataclass(frozen=True)
class _Test:
    text: str
    operands: tuple["_Node", ...]
    ops: tuple[str, ...]  # between consecutive operands

    def evaluate(self, results: Results) -> tuple[np.ndarray, list[np.ndarray]]:
        """Where the test holds, element-wise, and each operand's values."""
        values = [operand.values(results) for operand in self.operands]
        _check_lengths(self.operands, values)
        holds = np.ones(1, dtype=bool)
        for op, (left, right) in zip(self.ops, pairwise(values), strict=True):
            holds = holds & COMPARISONS[op](left, right)
        return holds, values


@dataclass(frozen=True)
class _Count:
    text: str
    test: _Test

    def values(self, results: Results) -> np.ndarray:
        return np.array([np.count_nonzero(self.test.evaluate(results)[0])], dtype=float)


@dataclass(frozen=True)
class _Importance:
    text: str
    param: str

    def values(self, results: Results) -> np.ndarray:
        if self.param not in results.importances:
            available = ", ".join(results.importances)
            raise _Unresolved(
                f"{self.text}: no importance for {self.param!r}; "
                + (f"available: {available}" if available else "this study has none")
            )
        return np.array([results.importances[self.param]], dtype=float)


_Node = _Number | _Ref | _Series | _Negative | _Binary | _Count | _Importance


@dataclass(frozen=True)
class Claim:
    """A parsed claim; parsing once lets a bad one fail when the experiment is loaded."""

    name: str
    says: str  # the finding in words
    check: str  # the source text
    tests: tuple[_Test, ...] = field(repr=False)  # all must hold


@dataclass(frozen=True)
class Verdict:
    """Whether a claim held on one seed's results, with the numbers that decided it."""

    claim: Claim
    held: bool
    numbers: dict[str, list[float]]  # each compared operand's text -> values; literals left out

    def describe(self) -> str:
        """One line: `final_loss[sgd] = 0.6234; 3 * final_loss[adam, sgd] = 0.2100, 0.0904`."""
        return "; ".join(f"{text} = {_shown(values)}" for text, values in self.numbers.items())


def parse(name: str, check: str, says: str = "") -> Claim:
    """The claim `name`, parsed; ClaimError, with the column, on a syntax error."""
    return Claim(name, says, check, _Parser(name, check).claim())


def parse_all(claims: Mapping[str, Any]) -> list[Claim]:
    """The claims of an experiment's config: name -> {says: ..., check: ...}."""
    parsed = []
    for name, entry in claims.items():
        fields = dict(entry.items()) if isinstance(entry, Mapping) else {}
        check, says = fields.pop("check", None), fields.pop("says", "")
        if fields or not isinstance(check, str) or not isinstance(says, str):
            raise ClaimError(
                f"claims.{name}: expected {{says: the finding in words, check: an expression}}, "
                f"got {entry!r}"
            )
        parsed.append(parse(name, check, says))
    return parsed


def validate(claims: Sequence[Claim], results: Results) -> None:
    """Evaluate every claim on `results`, so that one naming a variant, metric or series the
    study lacks, or comparing vectors of different lengths, fails before any training.
    Callers pass a dry Results: the variants' params, and zeros for every value."""
    for claim in claims:
        _verdict(claim, results)


def evaluate(claims: Sequence[Claim], results: Results) -> list[Verdict]:
    """Each claim's verdict on one seed's results."""
    return [_verdict(claim, results) for claim in claims]


def _verdict(claim: Claim, results: Results) -> Verdict:
    held, numbers = True, {}
    try:
        with np.errstate(divide="ignore", invalid="ignore"):  # dry zeros divide by zero
            for test in claim.tests:
                holds, values = test.evaluate(results)
                # a test over no variant (a search with no complete trial) says nothing
                held = held and holds.size > 0 and bool(holds.all())
                for operand, vector in zip(test.operands, values, strict=True):
                    if not _literal(operand):
                        numbers[operand.text] = vector.tolist()
    except _Unresolved as err:
        raise ClaimError(f"claims.{claim.name}: {err}") from None
    return Verdict(claim, held, numbers)


def _literal(node: _Node) -> bool:
    if isinstance(node, _Negative):
        return _literal(node.operand)
    if isinstance(node, _Binary):
        return _literal(node.left) and _literal(node.right)
    return isinstance(node, _Number)


def _shown(values: list[float]) -> str:
    if len(values) > SHOWN:
        low, high = shown_number(np.min(values)), shown_number(np.max(values))
        return f"{len(values)} values, min {low}, max {high}"
    return ", ".join(map(shown_number, values))


def shown_number(value: float) -> str:
    """A number behind a verdict: a count as a whole number, else as tables show numbers."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) >= 1 else format_number(value)


def _check_lengths(operands: Sequence[_Node], values: Sequence[np.ndarray]) -> None:
    """Vectors combine element-wise: each has one element, or as many as the others."""
    vectors = [(node.text, len(v)) for node, v in zip(operands, values, strict=True) if len(v) != 1]
    for text, n in vectors[1:]:
        if n != vectors[0][1]:
            raise _Unresolved(
                f"{vectors[0][0]} has {vectors[0][1]} values and {text} has {n}; "
                "combined values need one element or the same number"
            )


# Selecting variants


def _select(ref: _Ref, results: Results) -> list[str]:
    """The variants of `ref`'s selector: its items' variants, in the order listed, once each."""
    chosen: dict[str, None] = {}
    for item in ref.selector:
        chosen.update(dict.fromkeys(_item(ref, item, results)))
    return list(chosen)


def _item(ref: _Ref, item: str | int, results: Results) -> list[str]:
    variants = list(results.table.index)
    if isinstance(item, int):
        return _best(item, results)
    if item == "*":
        return variants
    if item in variants:
        return [item]
    if item in results.aliases:
        return [results.aliases[item]]
    key, _, value = (part.strip() for part in item.partition("="))
    if value and key in results.params.columns:
        return _matching(ref, key, value, results)
    named = {name: [name] for name in variants}
    for alias, name in results.aliases.items():
        if alias != name:
            named.setdefault(name, [name]).append(alias)
    valid = ", ".join(f"{n[0]} ({', '.join(n[1:])})" if n[1:] else n[0] for n in named.values())
    problem = (
        f"unknown variant {item!r} in {ref.text}; variants (aliases): {valid}; "
        "or '*', 'best N', KEY=VALUE over a param"
    )
    if value:
        problem += f" ({key!r} is not one; params: {', '.join(results.params.columns)})"
    raise _Unresolved(problem)


def _matching(ref: _Ref, key: str, text: str, results: Results) -> list[str]:
    """The variants whose param `key` is the YAML value `text`."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    column = results.params[key]
    matched = [name for name, param in column.items() if _same(param, value)]
    if not matched:
        taken = ", ".join(dict.fromkeys(map(str, column)))
        raise _Unresolved(f"no variant has {key}={text} in {ref.text}; {key} takes: {taken}")
    return matched


def _same(param: Any, value: Any) -> bool:
    def number(x: Any) -> bool:
        return isinstance(x, numbers.Real) and not isinstance(x, bool)

    if number(param) and number(value):
        return math.isclose(param, value, rel_tol=PARAM_TOLERANCE)
    return bool(param == value)


def _best(n: int, results: Results) -> list[str]:
    """The `n` variants with the highest score (ties by order), in the study's order."""
    if results.score not in results.table.columns:
        raise _Unresolved(f"'best {n}' ranks variants by a score, and this study has none")
    best = set(results.table[results.score].sort_values(ascending=False, kind="stable")[:n].index)
    return [name for name in results.table.index if name in best]


# Parsing


class _Token(NamedTuple):
    kind: str  # a group of _TOKEN, or "end"
    text: str
    start: int
    end: int


class _Parser:
    """Recursive descent over the check's tokens: one method per rule of the grammar."""

    def __init__(self, name: str, check: str) -> None:
        self.name, self.check, self.tokens, self.i = name, check, [], 0
        pos = 0
        while pos < len(check):
            match = _TOKEN.match(check, pos)
            if match is None:
                raise self.fail(pos, _stray(check, pos))
            if match.lastgroup != "space":
                self.tokens.append(_Token(match.lastgroup, match.group(), pos, match.end()))
            pos = match.end()
        self.tokens.append(_Token("end", "", pos, pos))

    def fail(self, pos: int, problem: str) -> ClaimError:
        return ClaimError(f"claims.{self.name}: at column {pos + 1} of {self.check!r}: {problem}")

    def error(self, problem: str, token: _Token | None = None) -> ClaimError:
        """`problem` at `token` (the next one by default), saying what was found there."""
        token = token or self.next
        if token.kind == "name" and token.text == "or":
            return self.fail(token.start, "'or' is not supported; join a claim's tests with 'and'")
        found = "the end" if token.kind == "end" else repr(token.text)
        return self.fail(token.start, f"{problem}, found {found}")

    @property
    def next(self) -> _Token:
        return self.tokens[self.i]

    def at(self, kind: str, *texts: str) -> bool:
        return self.next.kind == kind and (not texts or self.next.text in texts)

    def take(self) -> _Token:
        self.i += 1
        return self.tokens[self.i - 1]

    def expect(self, what: str, kind: str, *texts: str) -> _Token:
        if not self.at(kind, *texts):
            raise self.error(f"expected {what}")
        return self.take()

    def source(self, start: int) -> str:
        """The text parsed since `start`, its spaces normalised."""
        return " ".join(self.check[start : self.tokens[self.i - 1].end].split())

    def claim(self) -> tuple[_Test, ...]:
        tests = [self.test()]
        while self.at("name", "and"):
            self.take()
            tests.append(self.test())
        if self.at("op", ")"):
            raise self.fail(self.next.start, "unbalanced ')': no '(' opens it")
        if not self.at("end"):
            raise self.error("expected 'and' or the end of the claim")
        return tuple(tests)

    def test(self) -> _Test:
        start, operands, ops = self.next.start, [self.expr()], []
        while self.at("cmp"):
            ops.append(self.take().text)
            operands.append(self.expr())
        if not ops:
            raise self.error("expected a comparison: <, <=, > or >=")
        return _Test(self.source(start), tuple(operands), tuple(ops))

    def expr(self) -> _Node:
        return self.binary(self.term, "+", "-")

    def term(self) -> _Node:
        return self.binary(self.unary, "*", "/")

    def binary(self, operand: Callable[[], _Node], *ops: str) -> _Node:
        start, node = self.next.start, operand()
        while self.at("op", *ops):
            op = self.take().text
            right = operand()
            node = _Binary(self.source(start), op, node, right)
        return node

    def unary(self) -> _Node:
        start = self.next.start
        if not self.at("op", "-"):
            return self.atom()
        self.take()
        operand = self.unary()
        return _Negative(self.source(start), operand)

    def atom(self) -> _Node:
        token = self.next
        if token.kind == "number":
            self.take()
            return _Number(token.text, float(token.text))
        if self.at("op", "("):
            self.take()
            node = self.expr()
            self.expect(f"')': the '(' at column {token.start + 1} is unbalanced", "op", ")")
            return node
        if token.kind != "name" or token.text in ("and", "or"):
            raise self.error("expected a number, a name or '('")
        if token.text in FUNCTIONS:
            return self.call()
        if self.tokens[self.i + 1].text == "(":
            functions = ", ".join(FUNCTIONS)
            raise self.fail(token.start, f"unknown function {token.text!r}; functions: {functions}")
        return self.ref()

    def call(self) -> _Node:
        start, function = self.next.start, self.take().text
        self.expect(f"'(' after {function}", "op", "(")
        if function == "count":
            test = self.test()
            self.expect("')' to close count(", "op", ")")
            return _Count(self.source(start), test)
        if function == "importance":
            param = self.expect("a param's name, such as optimizer.lr", "name").text
            self.expect("')' to close importance(", "op", ")")
            return _Importance(self.source(start), param)
        ref, window = self.ref(), None
        if self.at("op", ","):
            self.take()
            window = self.count_of_points()
        self.expect(f"')' to close {function}(", "op", ")")
        return _Series(self.source(start), function, ref, window)

    def count_of_points(self) -> int:
        token = self.expect("a number of points", "number")
        n = float(token.text)
        if not (n.is_integer() and n >= 1):
            raise self.error("the number of points must be a positive whole number", token)
        return int(n)

    def ref(self) -> _Ref:
        token = self.next
        if token.kind != "name" or token.text in RESERVED:
            raise self.error("expected a name, such as final_loss or loss[sgd]")
        self.take()
        selector: tuple[str | int, ...] = ("*",)
        if self.at("selector"):
            brackets = self.take()
            selector = tuple(self.item(brackets, raw) for raw in brackets.text[1:-1].split(","))
        return _Ref(self.source(token.start), token.text, selector)

    def item(self, brackets: _Token, raw: str) -> str | int:
        """One selector item: a `best N` as N, anything else as its text."""
        item = raw.strip()
        if not item:
            raise self.error("empty item in the selector", brackets)
        best = _BEST.fullmatch(item)
        if best is None:
            return item
        if not (best[1].isdecimal() and int(best[1]) >= 1):
            raise self.error(f"{item!r}: N must be a positive whole number", brackets)
        return int(best[1])


def _stray(check: str, pos: int) -> str:
    """Why no token starts at `pos`."""
    if check[pos] == "[":
        return "unbalanced '[': no ']' closes it"
    if check[pos] == "]":
        return "unbalanced ']': no '[' opens it"
    if check[pos] in "=!":
        op = check[pos : pos + 2] if check[pos + 1 : pos + 2] == "=" else check[pos]
        return f"{op!r} is not supported; compare with <, <=, > or >="
    return f"unexpected character {check[pos]!r}"
