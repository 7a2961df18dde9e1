"""Folding rules as data: a :class:`RuleSet` says how events change state.

A rule set declares

* the **key** whose state events change (``account_id``);
* the **state fields** with their type and initial value;
* per **event type**, the new value of some fields, as expressions of the
  state before the event, the event's columns and the rule set's parameters
  (see :mod:`eventkit.rules.expr`; all fields of one event are assigned at once);
* optionally a **requirement** an event must meet to be folded (e.g. the
  account is open); an event that fails it leaves the state unchanged and is
  reported in the ``violation`` column, never silently folded;
* optionally **interest** accrued between events (see :class:`Interest`).

Rule sets are built in Python or loaded from a TOML rules file
(:meth:`RuleSet.from_toml`), and have a stable :attr:`RuleSet.fingerprint`.

Examples
--------
>>> points = RuleSet(
...     name="points",
...     fields=(Field("points", "int"),),
...     handlers=(Handler("Deposit", {"points": "points + amount // 100 * per_unit"}),),
...     params={"per_unit": 2},
... )
>>> points.check().linear
True
>>> points.with_params(per_unit=3).fingerprint != points.fingerprint
True

"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from eventkit.exceptions import RuleError
from eventkit.rules.expr import INT64_MAX, INT64_MIN, ROUNDING, Expr, Scope, Typ, parse
from eventkit.rules.simplify import fold_constants
from eventkit.timeutil import InstantError, to_instant

__all__ = ["CheckedRules", "Field", "Handler", "Interest", "RuleSet"]

#: Event columns rules may read, with their types (nulls read as 0, or NaN for floats).
EVENT_COLUMNS: Mapping[str, Typ] = {
    "amount": "int",
    "counterparty_id": "int",
    "rate": "float",
}
_RESERVED = {"require", *EVENT_COLUMNS}
#: The largest rules file read (bytes): far beyond any real rule set, and bounds load time.
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Field:
    """A state field: ``int`` (exact money in minor units, counts), ``float`` or ``enum``.

    An ``enum`` field holds one of ``values`` (by name); its initial value
    defaults to the first. ``money`` marks an int field as an amount in minor
    units, so displays show it in currency units (it changes no arithmetic).
    """

    name: str
    type: Typ = "int"
    initial: int | float | str | None = None
    values: tuple[str, ...] = ()
    money: bool = False

    @property
    def start(self) -> int | float | str:
        """The initial value, with the type's default filled in."""
        if self.initial is not None:
            return self.initial
        defaults: dict[str, int | float | str] = {
            "int": 0, "float": 0.0, "enum": self.values[0] if self.values else ""}
        return defaults[self.type]


@dataclass(frozen=True)
class Handler:
    """What one event type does: new field values, and an optional requirement.

    ``require`` replaces the rule set's requirement for this event type; the
    empty string means "no requirement".
    """

    event_type: str
    set: Mapping[str, str] = field(default_factory=dict)
    require: str | None = None


@dataclass(frozen=True)
class Interest:
    """Interest accrued on a field between consecutive events of a key.

    Convention (stated once, used by every engine and the reference fold):
    simple interest **ACT/365 on exact elapsed time**. When an event arrives,
    the interest for the interval since the key's previous event is

        ``rounding(balance * I / 31_536_000)``

    where ``I`` is the integral of the annual rate over the interval in
    rate-seconds (the rate in force changes at each rate-table entry) and
    ``balance`` is in minor units. The rounded amount is *posted* then: added to
    ``balance_field`` (so interest compounds at every posting) and to
    ``posted_field``. Negative balances accrue at the same rate. Posting
    happens before the event's own effect, also for events that a requirement
    rejects.

    The rate in force is the key's own ``account_rate_field`` when that is
    not NaN, else the bank-wide rate table: the rule set's ``rate_table``
    parameter when given, else the ``InterestRateChanged`` events of the bank
    key (account 0) in the replayed events.
    """

    balance_field: str = "balance"
    posted_field: str | None = "interest"
    account_rate_field: str | None = None
    rounding: str = "round_half_even"


@dataclass(frozen=True)
class RuleSet:
    """A set of folding rules; see the module docstring.

    ``rate_table`` (effective instant, annual rate) pairs, when given,
    replace the bank's ``InterestRateChanged`` events as the bank-wide rate
    table: that is how a what-if scenario changes rates. A date as effective
    instant means the start of that UTC day.
    """

    name: str
    fields: tuple[Field, ...]
    handlers: tuple[Handler, ...]
    key: str = "account_id"
    params: Mapping[str, int | float] = field(default_factory=dict)
    require: str | None = None
    interest: Interest | None = None
    rate_table: tuple[tuple[datetime, float], ...] | None = None
    columns: Mapping[str, Typ] = field(default_factory=dict)
    description: str = ""
    source: str = "<python>"

    # ------------------------------------------------------------------ variants
    def with_params(self, **overrides: Any) -> RuleSet:
        """A copy with some parameters changed (also ``rate_table`` and interest ``rounding``).

        Unknown names are an error, so a typo never silently changes nothing.
        """
        rate_table = overrides.pop("rate_table", self.rate_table)
        interest = self.interest
        if "rounding" in overrides:
            if interest is None:
                msg = f"{self.source}: rule set {self.name!r} has no interest to round"
                raise RuleError(msg)
            interest = replace(interest, rounding=overrides.pop("rounding"))
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            msg = (f"{self.source}: rule set {self.name!r} has no parameter(s) {unknown}; "
                   f"known: {sorted(self.params)}, rate_table and rounding")
            raise RuleError(msg)
        return replace(self, params={**self.params, **overrides}, interest=interest,
                       rate_table=_rate_table(rate_table, self.source))

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the rules *mean*: fields, expressions, parameters, interest.

        Expressions are normalized (parsed and re-printed), so reformatting a
        rules file does not change it; the name and description do not count.
        """
        body = {
            "key": self.key,
            "fields": [[f.name, f.type, f.start, list(f.values)] for f in self.fields],
            "handlers": sorted(
                [h.event_type, sorted((k, _normal(v)) for k, v in h.set.items()),
                 None if h.require is None else _normal(h.require)]
                for h in self.handlers),
            "params": sorted((k, repr(v)) for k, v in self.params.items()),
            "require": None if self.require is None else _normal(self.require),
            "interest": None if self.interest is None else vars(self.interest),
            "rate_table": None if self.rate_table is None else [
                [t.isoformat(), repr(r)] for t, r in self.rate_table],
            "columns": sorted(self.columns.items()),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    # ------------------------------------------------------------------ checking
    def check(self) -> CheckedRules:
        """Parse and type-check every expression; raise :class:`RuleError` naming the rule."""
        return CheckedRules.build(self)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_toml(cls, path: str | Path) -> RuleSet:
        """Load a rule set from a TOML rules file.

        The file holds ``[ruleset]`` (``name``, optional ``key``, ``require``,
        ``description``), ``[params]``, ``[fields.NAME]`` tables (``type``,
        ``initial``, ``values``), optional ``[columns]`` (extra event columns and
        their types), optional ``[interest]`` (the :class:`Interest` options)
        and one ``[on.EVENT_TYPE]`` table per event type mapping field names to
        expressions (plus an optional ``require``).
        """
        where = str(path)
        try:
            with Path(path).open("rb") as file:
                raw = file.read(MAX_FILE_BYTES + 1)
            if len(raw) > MAX_FILE_BYTES:
                msg = (f"{where}: rules file larger than the limit of {MAX_FILE_BYTES:,} bytes "
                       "(eventkit.rules.model.MAX_FILE_BYTES)")
                raise RuleError(msg)
            data = tomllib.loads(raw.decode())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            msg = f"{where}: cannot read rules file: {exc}"
            raise RuleError(msg) from None
        return cls.from_dict(data, source=where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> RuleSet:
        """Build a rule set from the structure of a rules file (see :meth:`from_toml`)."""
        unknown = sorted(set(data) - {"ruleset", "params", "fields", "on", "interest",
                                      "columns", "rate_table"})
        if unknown:
            msg = f"{source}: unknown section(s) {unknown}"
            raise RuleError(msg)
        head = data.get("ruleset", {})
        if "name" not in head:
            msg = f"{source}: [ruleset] needs a name"
            raise RuleError(msg)
        fields = []
        for name, spec in data.get("fields", {}).items():
            if not isinstance(spec, Mapping):
                msg = f"{source}: [fields.{name}] must be a table with type and initial"
                raise RuleError(msg)
            bad = sorted(set(spec) - {"type", "initial", "values", "money"})
            if bad:
                msg = f"{source}: [fields.{name}] has unknown key(s) {bad}"
                raise RuleError(msg)
            fields.append(Field(name, spec.get("type", "int"), spec.get("initial"),
                                tuple(spec.get("values", ())), bool(spec.get("money", False))))
        handlers = []
        for event_type, spec in data.get("on", {}).items():
            sets = {k: v for k, v in spec.items() if k != "require"}
            handlers.append(Handler(event_type, sets, spec.get("require")))
        interest = data.get("interest")
        try:
            interest_obj = Interest(**interest) if interest is not None else None
        except TypeError as exc:
            msg = f"{source}: [interest]: {exc}"
            raise RuleError(msg) from None
        return cls(
            name=head["name"],
            key=head.get("key", "account_id"),
            require=head.get("require"),
            description=head.get("description", ""),
            params=dict(data.get("params", {})),
            fields=tuple(fields),
            handlers=tuple(handlers),
            interest=interest_obj,
            rate_table=_rate_table(data.get("rate_table"), source),
            columns=dict(data.get("columns", {})),
            source=source,
        )


def _normal(text: str) -> str:
    try:
        return ast.dump(ast.parse(text.strip(), mode="eval"))
    except SyntaxError:
        return text


def _rate_table(
    table: Any, source: str
) -> tuple[tuple[datetime, float], ...] | None:
    """Read a rate table: (instant, rate) pairs, or a mapping instant -> rate."""
    if table is None:
        return None
    pairs = table.items() if isinstance(table, Mapping) else table
    out = []
    try:
        for when, rate in pairs:
            out.append((to_instant(when, param="rate_table", day="start"), float(rate)))
    except (InstantError, TypeError, ValueError) as exc:
        msg = f"{source}: bad rate_table entry: {exc}"
        raise RuleError(msg) from None
    out.sort(key=lambda p: p[0])
    for _, rate in out:
        if not math.isfinite(rate):
            msg = f"{source}: rate_table holds a non-finite rate {rate}"
            raise RuleError(msg)
    return tuple(out)


@dataclass(frozen=True)
class CheckedRules:
    """A rule set whose expressions are parsed and type-checked.

    ``assignments[event_type]`` lists (field, expression) pairs;
    ``requirements[event_type]`` is the requirement in force (or None).
    ``linear`` is true when, for every field, all assignments add an
    event-only amount to it, or all set it from the event alone, and there is
    no requirement and no interest: then each event's effect is a vectorized
    Polars expression and the fold is a running sum (or a forward fill) per key.
    """

    rules: RuleSet
    fields: Mapping[str, Field]
    scope: Scope
    assignments: Mapping[str, tuple[tuple[str, Expr], ...]]
    requirements: Mapping[str, Expr | None]
    linear: bool

    @classmethod
    def build(cls, rules: RuleSet) -> CheckedRules:
        """Check ``rules``; raise :class:`RuleError` naming the file, rule and expression."""
        src = f"{rules.source}: rule set {rules.name!r}"
        fields = {f.name: f for f in rules.fields}
        if len(fields) != len(rules.fields):
            msg = f"{src}: a field is declared twice"
            raise RuleError(msg)
        for f in rules.fields:
            _check_field(f, src)
        clash = sorted((set(fields) | set(rules.params)) & (_RESERVED | set(rules.columns)))
        if clash:
            msg = f"{src}: names {clash} are reserved for event columns or 'require'"
            raise RuleError(msg)
        clash = sorted(set(fields) & set(rules.params))
        if clash:
            msg = f"{src}: {clash} named both a parameter and a state field; rename one"
            raise RuleError(msg)
        for name, typ in rules.columns.items():
            if typ not in ("int", "float"):
                msg = f"{src}: column {name!r} must be of type int or float, not {typ!r}"
                raise RuleError(msg)
        for name, value in rules.params.items():
            _check_number(f"{src}: parameter {name!r}", value)
        scope = Scope(
            fields={f.name: f.type for f in rules.fields},
            columns={**EVENT_COLUMNS, **rules.columns},
            params=dict(rules.params),
            enums={f.name: f.values for f in rules.fields if f.type == "enum"},
        )
        default_req = (_parse(rules.require, scope, where=f"{src}, require")
                       if rules.require else None)
        assignments: dict[str, tuple[tuple[str, Expr], ...]] = {}
        requirements: dict[str, Expr | None] = {}
        for h in rules.handlers:
            where = f"{src}, rule on {h.event_type}"
            if h.event_type in assignments:
                msg = f"{where}: event type handled twice"
                raise RuleError(msg)
            pairs = []
            for target, text in h.set.items():
                if target not in fields:
                    msg = f"{where}: assigns unknown field {target!r} (fields: {sorted(fields)})"
                    raise RuleError(msg)
                expr = parse(str(text), scope, where=f"{where}, field {target}")
                _check_assignment(fields[target], expr, where)
                pairs.append((target, _simplified(expr, scope, f"{where}, field {target}")))
            assignments[h.event_type] = tuple(pairs)
            if h.require is None:
                requirements[h.event_type] = default_req
            else:
                requirements[h.event_type] = (_parse(h.require, scope, where=f"{where}, require")
                                              if h.require else None)
        if rules.interest is not None:
            _check_interest(rules.interest, fields, src)
        kinds: dict[str, set[str | None]] = {}
        for assigned in assignments.values():
            for target, expr in assigned:
                kinds.setdefault(target, set()).add(_linear_kind(target, expr))
        linear = (
            rules.interest is None
            and all(r is None for r in requirements.values())
            and all(k - {"keep"} in ({"add"}, {"set"}, set()) for k in kinds.values())
        )
        return cls(rules, fields, scope, assignments, requirements, linear)


def _parse(text: str, scope: Scope, *, where: str) -> Expr:
    return _simplified(parse(text, scope, where=where), scope, where)


def _simplified(expr: Expr, scope: Scope, where: str) -> Expr:
    """``expr`` with its tree simplified by the parameters' values (what every engine runs)."""
    node = fold_constants(expr.node, scope, where=where)
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return replace(expr, node=node, fields=frozenset(names & set(scope.fields)),
                   columns=frozenset(names & set(scope.columns)))


def _check_number(what: str, value: object) -> None:
    """A parameter or an initial value: an Int64, or a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{what} must be a number, not {value!r}"
        raise RuleError(msg)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        msg = f"{what} is {value}, beyond Int64"
        raise RuleError(msg)
    if isinstance(value, float) and not math.isfinite(value):
        msg = f"{what} must be finite, not {value!r}"
        raise RuleError(msg)


def _check_field(f: Field, src: str) -> None:
    if f.type not in ("int", "float", "enum"):
        msg = f"{src}: field {f.name!r} has unknown type {f.type!r} (int, float or enum)"
        raise RuleError(msg)
    if f.type == "enum":
        if not f.values:
            msg = f"{src}: enum field {f.name!r} needs its values"
            raise RuleError(msg)
        if f.start not in f.values:
            msg = f"{src}: initial value {f.start!r} of {f.name!r} is not one of {f.values}"
            raise RuleError(msg)
    elif f.type == "int" and (isinstance(f.start, bool) or not isinstance(f.start, int)):
        msg = f"{src}: initial value of int field {f.name!r} must be an integer"
        raise RuleError(msg)
    elif f.type == "int":
        _check_number(f"{src}: initial value of {f.name!r}", f.start)
    elif f.type == "float" and not isinstance(f.start, int | float):
        msg = f"{src}: initial value of float field {f.name!r} must be a number"
        raise RuleError(msg)


def _check_assignment(target: Field, expr: Expr, where: str) -> None:
    if target.type == "enum":
        if expr.typ != "enum":
            msg = f"{where}, field {target.name}: assigns a number to a named-value field"
            raise RuleError(msg)
        bad = [n.value for n in ast.walk(expr.node) if isinstance(n, ast.Constant)
               and isinstance(n.value, str) and n.value not in target.values]
        if bad:
            msg = f"{where}, field {target.name}: {bad[0]!r} is not one of {list(target.values)}"
            raise RuleError(msg)
        return
    if expr.typ == "enum":
        msg = f"{where}, field {target.name}: assigns a named value to a number field"
        raise RuleError(msg)
    if target.type == "int" and expr.typ == "float":
        msg = (f"{where}, field {target.name}: a float expression for an integer field; "
               f"round it explicitly with one of {sorted(ROUNDING)}")
        raise RuleError(msg)


def _check_interest(interest: Interest, fields: Mapping[str, Field], src: str) -> None:
    if interest.rounding not in ROUNDING:
        msg = f"{src}: interest rounding {interest.rounding!r} is not one of {sorted(ROUNDING)}"
        raise RuleError(msg)
    for label, name, typ in (("balance_field", interest.balance_field, "int"),
                             ("posted_field", interest.posted_field, "int"),
                             ("account_rate_field", interest.account_rate_field, "float")):
        if name is None:
            continue
        if name not in fields or fields[name].type != typ:
            msg = f"{src}: interest {label} {name!r} must be a declared {typ} field"
            raise RuleError(msg)


def _linear_kind(target: str, expr: Expr) -> str | None:
    """``"add"`` for ``target ± event-only``, ``"set"`` for event-only, else None.

    ``"keep"`` for ``target`` itself (e.g. ``target + 0``, simplified).
    """
    node = expr.node
    if isinstance(node, ast.Name) and node.id == target:
        return "keep"
    if not expr.fields:
        return "set"
    if expr.fields == {target} and isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.Add | ast.Sub):
        left_is_target = isinstance(node.left, ast.Name) and node.left.id == target
        right_is_target = isinstance(node.right, ast.Name) and node.right.id == target
        other = node.right if left_is_target else node.left
        if (left_is_target or (right_is_target and isinstance(node.op, ast.Add))) and not any(
                isinstance(n, ast.Name) and n.id == target for n in ast.walk(other)):
            return "add"
    return None


def linear_delta(target: str, expr: Expr) -> tuple[str, ast.expr, int]:
    """For a linear assignment: its kind, the event-only part, and its sign (+1/-1)."""
    kind = _linear_kind(target, expr)
    node = expr.node
    if kind in ("set", "keep"):
        return kind, node, 1
    assert isinstance(node, ast.BinOp)
    if isinstance(node.left, ast.Name) and node.left.id == target:
        return "add", node.right, (-1 if isinstance(node.op, ast.Sub) else 1)
    return "add", node.left, 1
