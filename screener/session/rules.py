"""Declarative rule sets (TOML) that turn session metrics into a level, with the evidence.

Rules are data, never code: each `[[rule]]` has a `level`, an `explain` text and a `when` table
of `metric = "<op> <number>"` conditions that must all hold. Rules are tried top-down and the
first whose conditions all hold fires; the last rule must have no conditions (the fallback).
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from screener.domain import EMOTIONS, Assessment
from screener.resources import resource_path
from screener.session.aggregate import metric_names
from screener.session.estimate import interval_text
from screener.settings import SettingsError, parse_toml, read_settings_file

LEVELS = ("insufficient", "low", "moderate", "high")
"""In order of concern; `insufficient` means too little data to judge."""

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


ESTIMATE = "negative_share_est"
ESTIMATE_BOUNDS = ("negative_share_low", "negative_share_high")
BASELINE = "negative_share_vs_baseline"
"""Percentage points above the student's baseline estimate: it moves with the estimate."""
EXPRESSIONS = "distinct_expressions"
MIN_DISTINCT_EXPRESSIONS = 30
"""Below this many distinct expressions a level is a hint, not a finding: in 12,000 simulated
sessions of eight face sources (benchmarks/results/source_levels_joined.json), every band of
fewer got the right level in 72-80% (apart from 1-4 expressions, one expression throughout),
every band from 30 on in 81% or more."""

METRIC_WORDS = {
    "negative_share_est": "estimated share of negative expressions",
    "negative_share_low": "low end of the likely range of negative expressions",
    "negative_share_high": "high end of the likely range of negative expressions",
    "negative_share": "share of faces labelled negative",
    "negative_probability": "mean chance the model gave to angry, sad or fear",
    "positive_share": "share of faces labelled happy",
    "valence": "happy share minus negative share",
    "longest_negative_run_s": "longest negative stretch",
    "negative_episodes": "number of negative episodes",
    "negative_share_vs_baseline": "change from the student's usual negative share",
    "face_frames": "frames with a face",
    "faces_found": "faces found",
    "frames_analysed": "frames looked at",
    "face_coverage": "share of frames with a face",
    "duration_s": "length of the recording",
    "distinct_expressions": "distinct expressions seen",
    "scenes": "scenes",
    "undecodable_frames": "unreadable frames",
}
_OPERATOR_WORDS = {"<": "under", "<=": "at most", ">": "over", ">=": "at least",
                   "==": "exactly", "!=": "not"}


def metric_words(name: str) -> str:
    """A metric's name in plain words, for pages and explanations."""
    if name in METRIC_WORDS:
        return METRIC_WORDS[name]
    for prefix, words in (("share_", "share of faces labelled "),
                          ("mean_p_", "mean chance the model gave to "),
                          ("episodes_", "episodes of ")):
        if name.startswith(prefix):
            return words + name[len(prefix):]
    return name.replace("_", " ")


def metric_value(value: Any, name: str) -> str:
    """A metric's value in the unit a reader expects from its name."""
    if not _is_number(value):
        return str(value)
    if name == BASELINE:
        return f"{value:+.0f} percentage points"
    if "share" in name or "coverage" in name or "probability" in name or name.startswith("mean_p"):
        return f"{value:.0%}"
    if name.endswith("_s"):
        return f"{value:.1f} s" if value < 60 else f"{value / 60:.1f} min"
    return f"{value:g}" if float(value).is_integer() else f"{value:.3g}"


def too_short(metrics: Mapping[str, Any]) -> int | None:
    """The number of distinct expressions when a session holds too few to judge reliably
    (fewer than `MIN_DISTINCT_EXPRESSIONS`), else None (or when it was not counted)."""
    seen = metrics.get(EXPRESSIONS)
    if _is_number(seen) and 0 < seen < MIN_DISTINCT_EXPRESSIONS:
        return int(seen)
    return None


def too_short_sentence(seen: int) -> str:
    return (f"Too short to judge reliably: {seen} distinct expression"
            f"{'' if seen == 1 else 's'} seen. Treat this level as a hint, not a finding.")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RulesError(ValueError):
    """A rules file is invalid; the message names the file and, where known, the line."""


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, metrics: Mapping[str, Any]) -> bool:
        actual = metrics.get(self.metric)
        return isinstance(actual, int | float) and _OPERATORS[self.op](float(actual), self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def in_words(self, actual: float) -> str:
        """'the longest negative stretch is 14.0 s (at least 10.0 s)'."""
        return (f"the {metric_words(self.metric)} is {metric_value(actual, self.metric)} "
                f"({_OPERATOR_WORDS[self.op]} {metric_value(self.value, self.metric)})")


@dataclass(frozen=True)
class Rule:
    name: str
    level: str
    explain: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    """A short hash of the file's content: re-scans happen when the rules change."""
    negative: tuple[str, ...]
    min_run: int
    smoothing_window: int
    rules: tuple[Rule, ...]
    source: str

    @property
    def tag(self) -> str:
        """What a session stores as its rules version: which rule set, at which content."""
        return f"{self.name}@{self.version}"

    def assess(self, metrics: Mapping[str, Any]) -> Assessment:
        """The first rule that holds gives the level. When the level could differ anywhere in
        the estimate's 90% interval, the explanation says which other levels it could be:
        the number a threshold was compared with is itself uncertain. A session with too few
        distinct expressions (`too_short`) says its level is a hint."""
        assessment = self._first_holding(metrics)
        others = [lv for lv in self.levels_within_interval(metrics) if lv != assessment.level]
        if others:
            low, high = (float(metrics[k]) for k in ESTIMATE_BOUNDS)
            assessment = replace(assessment, explanation=(
                f"{assessment.explanation} The share is {interval_text(low, high)}, and in "
                f"that range the level could also be {' or '.join(others)}."))
        seen = too_short(metrics)
        if seen is not None and assessment.level != "insufficient":
            assessment = replace(assessment, explanation=(
                f"{assessment.explanation} {too_short_sentence(seen)}"))
        return assessment

    def levels_within_interval(self, metrics: Mapping[str, Any]) -> list[str]:
        """The levels the rules give as `negative_share_est` moves through its interval (and
        `negative_share_vs_baseline` with it), in order of concern; [] without an interval.

        Only the interval's ends and the thresholds inside it can change a level, so the
        rules are tried there, and a hair either side of each threshold."""
        values = [metrics.get(k) for k in (ESTIMATE, *ESTIMATE_BOUNDS)]
        if not all(_is_number(v) for v in values):
            return []
        est, low, high = (float(v) for v in values)  # type: ignore[arg-type]
        baseline = metrics.get(BASELINE)
        cuts = set()
        for condition in (c for r in self.rules for c in r.conditions):
            if condition.metric == ESTIMATE:
                cuts.add(condition.value)
            elif condition.metric == BASELINE and _is_number(baseline):
                cuts.add(est + (condition.value - float(baseline)) / 100.0)
        points = {low, high} | {c + d for c in cuts if low < c < high for d in (-1e-9, 1e-9)}
        levels = set()
        for point in points:
            moved = {**metrics, ESTIMATE: point}
            if _is_number(baseline):
                moved[BASELINE] = float(baseline) + 100.0 * (point - est)
            levels.add(self._first_holding(moved).level)
        return [lv for lv in LEVELS if lv in levels] + sorted(levels - set(LEVELS))

    def _first_holding(self, metrics: Mapping[str, Any]) -> Assessment:
        for rule in self.rules:
            if all(c.holds(metrics) for c in rule.conditions):
                evidence = {
                    c.metric: float(metrics[c.metric]) for c in rule.conditions
                }
                because = " and ".join(c.in_words(evidence[c.metric]) for c in rule.conditions)
                explanation = rule.explain + (f" This level because {because}."
                                              if because else "")
                return Assessment(rule.level, rule.name, explanation, evidence, self.tag)
        raise AssertionError("validated rule sets end with an unconditional rule")


def builtin_rule_sets() -> list[str]:
    return sorted(p.stem for p in resource_path("rulesets").glob("*.toml"))


def load_rules(name_or_path: str) -> RuleSet:
    """A shipped rule set by name (`default`, `seed`) or a TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = resource_path("rulesets") / f"{name_or_path}.toml"
        if not path.is_file():
            raise RulesError(
                f"unknown rule set {name_or_path!r}; shipped: {', '.join(builtin_rule_sets())}"
            )
    try:
        text = read_settings_file(path, "rules file")
    except SettingsError as exc:
        raise RulesError(str(exc)) from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    try:
        data = parse_toml(text, source)
    except SettingsError as exc:
        raise RulesError(str(exc)) from exc
    where = _Locator(text, source)
    known_top = {"name", "description", "negative", "min_run", "smoothing_window", "rule"}
    for key in data:
        if key not in known_top:
            raise RulesError(f"{where.at(key)}: unknown key {key!r}")
    raw_negative = data.get("negative", ["angry", "sad", "fear"])
    if not isinstance(raw_negative, list):
        raise RulesError(f"{where.at('negative')}: negative must be a list of emotions")
    negative = tuple(raw_negative)
    bad = [e for e in negative if e not in EMOTIONS]
    if bad:
        raise RulesError(f"{where.at('negative')}: not emotions: {', '.join(map(str, bad))}")
    min_run = _positive_int(data.get("min_run", 5), where.at("min_run"), "min_run")
    window = _positive_int(
        data.get("smoothing_window", 10), where.at("smoothing_window"), "smoothing_window"
    )
    raw_rules = data.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RulesError(f"{source}: no [[rule]] tables")
    known_metrics = metric_names(negative)
    rules = tuple(
        _parse_rule(raw, i, known_metrics, where) for i, raw in enumerate(raw_rules, start=1)
    )
    if rules[-1].conditions:
        raise RulesError(f"{source}: the last rule must have no conditions (the fallback level)")
    version = hashlib.sha256(text.encode()).hexdigest()[:10]
    return RuleSet(
        name=str(data.get("name", Path(source).stem)), version=version, negative=negative,
        min_run=min_run, smoothing_window=window, rules=rules, source=source,
    )


def _parse_rule(raw: Any, number: int, known: set[str], where: _Locator) -> Rule:
    if not isinstance(raw, dict):
        raise RulesError(f"{where.source}: rule {number} is not a table")
    name = str(raw.get("name", f"rule-{number}"))
    unknown = set(raw) - {"name", "level", "explain", "when"}
    if unknown:
        key = sorted(unknown)[0]
        raise RulesError(f"{where.at(key, rule=number)}: unknown key {key!r} in rule {name!r}")
    level = raw.get("level")
    if level not in LEVELS:
        raise RulesError(
            f"{where.at('level', rule=number)}: rule {name!r} level must be one of "
            f"{', '.join(LEVELS)}"
        )
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise RulesError(f"{where.at('when', rule=number)}: `when` must be a table")
    conditions = []
    for metric, condition in when.items():
        line = where.at(metric, rule=number)
        if metric not in known:
            raise RulesError(f"{line}: unknown metric {metric!r} in rule {name!r}")
        if _is_number(condition):
            conditions.append(Condition(metric, "==", float(condition)))
            continue
        if not isinstance(condition, str):
            raise RulesError(f"{line}: condition on {metric} must be a string")
        match = _CONDITION.match(condition)
        if not match:
            raise RulesError(
                f"{line}: bad condition {condition!r} on {metric}; "
                "write an operator (<, <=, >, >=, ==, !=) and a number, e.g. \">= 0.5\""
            )
        conditions.append(Condition(metric, match.group(1), float(match.group(2))))
    return Rule(name, str(level), str(raw.get("explain", "")).strip(), tuple(conditions))


def _positive_int(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RulesError(f"{where}: {key} must be a positive whole number")
    return value


class _Locator:
    """Finds the line of a key in the rules text, since tomllib reports no positions."""

    def __init__(self, text: str, source: str) -> None:
        self.lines, self.source = text.splitlines(), source

    def at(self, key: str, rule: int | None = None) -> str:
        """`source:line` of `key` (an assignment or a table header), searched from the start
        of the `rule`-th `[[rule]]` table when given."""
        start = 0
        if rule is not None:
            headers = [i for i, line in enumerate(self.lines)
                       if re.match(r"^\s*\[\[\s*rule\s*\]\]", line)]
            if len(headers) >= rule:
                start = headers[rule - 1]
        k = re.escape(key)
        pattern = re.compile(rf"(^|[\s{{,]){k}\s*=|^\s*\[\[?\s*{k}\s*\]")
        for number in range(start, len(self.lines)):
            if pattern.search(self.lines[number]):
                return f"{self.source}:{number + 1}"
        return self.source
