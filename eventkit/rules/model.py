"""Folding rules as data: a :class:`RuleSet` says how events change state.

A rule set declares

* the **key** whose state events change: one column (``account_id``, a text
  ``order_id``, ...) or several (``("tenant", "order_id")``), of any type a
  key can have (integers, text, dates, booleans);
* optionally the **global events**: events that belong to no key but apply to
  every key (:class:`GlobalEvents`; the banking rules: the bank's own
  ``InterestRateChanged`` events, on account 0, form the bank-wide rate table);
* optionally a **selection** (``where``): the events this rule set folds, when
  one archive holds several kinds of streams (``stream_type == 'order'``);
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
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from eventkit.exceptions import RuleError
from eventkit.rules.expr import INT64_MAX, INT64_MIN, ROUNDING, Expr, Scope, Typ, parse
from eventkit.rules.parts import (
    Field,
    GlobalEvents,
    Handler,
    Interest,
    key_value,
    normal,
    plain,
    read_rate_table,
)
from eventkit.rules.simplify import fold_constants

__all__ = ["CheckedRules", "Field", "GlobalEvents", "Handler", "Interest", "RuleSet"]

#: Event columns rules may read, with their types (nulls read as 0, NaN for floats, the
#: empty string for text); a rule set's ``columns`` declares more.
EVENT_COLUMNS: Mapping[str, Typ] = {
    "amount": "int",
    "counterparty_id": "int",
    "rate": "float",
    "event_type": "string",
    "event_id": "string",
    "event_time": "time",
    "recorded_at": "time",
    "seq": "int",
}
#: Types a declared event column may have (``time``: read through ``day(t)``, ``hour(t)``...).
COLUMN_TYPES = ("int", "float", "string", "time")
_RESERVED = {"require", *EVENT_COLUMNS}
#: What an event type is: a plain name (no wildcard, no spaces around it).
_TYPE_NAME = re.compile(r"[^\s*?\[\]]+(?:[^*?\[\]]*[^\s*?\[\]])?")
#: The largest rules file read (bytes): far beyond any real rule set, and bounds load time.
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class RuleSet:
    """A set of folding rules; see the module docstring.

    ``key`` names the key column, or a tuple of columns (a composite key).
    ``rate_table`` (effective instant, annual rate) pairs, when given,
    replace the rate events among the global events as the rate table: that
    is how a what-if scenario changes rates. A date as effective instant
    means the start of that UTC day. ``where`` (an expression over event
    columns, e.g. ``"stream_type == 'order'"``) selects the events the rule
    set folds; the others are not part of its replay. ``ignore`` names event
    types the rules leave alone on purpose: a replay warns about any other
    type that occurs and no rule handles (see :func:`eventkit.replay`).
    ``columns`` declares further event columns the expressions read, with
    their types (``int``, ``float``, ``string``, ``time``).
    """

    name: str
    fields: tuple[Field, ...]
    handlers: tuple[Handler, ...]
    key: str | tuple[str, ...] = "account_id"
    params: Mapping[str, int | float] = field(default_factory=dict)
    require: str | None = None
    interest: Interest | None = None
    rate_table: tuple[tuple[datetime, float], ...] | None = None
    columns: Mapping[str, Typ] = field(default_factory=dict)
    description: str = ""
    source: str = "<python>"
    global_events: GlobalEvents | None = None
    where: str | None = None
    ignore: tuple[str, ...] = ()

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key's column names: one, or several for a composite key."""
        return (self.key,) if isinstance(self.key, str) else tuple(self.key)

    @property
    def keying(self) -> tuple[object, ...]:
        """What decides which events fold, and under which key.

        Two rule sets that agree on it can share the preparation of one set of
        events (see ``compare``).
        """
        return (self.key_columns, self.global_events,
                None if self.where is None else normal(self.where))

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
                       rate_table=read_rate_table(rate_table, self.source))

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the rules *mean*: fields, expressions, parameters, interest.

        Expressions are normalized (parsed and re-printed), so reformatting a
        rules file does not change it; the name and description do not count.
        """
        body = {
            "key": self.key if isinstance(self.key, str) else list(self.key),
            **({"global": [plain(self.global_events.key),
                           plain(self.global_events.event_types)]}
               if self.global_events is not None else {}),
            **({"where": normal(self.where)} if self.where is not None else {}),
            "fields": [[f.name, f.type, f.start, list(f.values)] for f in self.fields],
            "handlers": sorted(
                [h.event_type, sorted((k, normal(v)) for k, v in h.set.items()),
                 None if h.require is None else normal(h.require)]
                for h in self.handlers),
            "params": sorted((k, repr(v)) for k, v in self.params.items()),
            "require": None if self.require is None else normal(self.require),
            "interest": None if self.interest is None else {
                k: v for k, v in vars(self.interest).items()
                if not (k == "rate_event" and v == Interest.rate_event)},
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

        The file holds ``[ruleset]`` (``name``, optional ``key`` — a column
        name or a list of them —, ``require``, ``where``, ``ignore``,
        ``description``), ``[params]``, ``[fields.NAME]`` tables (``type``,
        ``initial``, ``values``), optional ``[columns]`` (extra event columns and
        their types), optional ``[interest]`` (the :class:`Interest` options),
        optional ``[global]`` (the :class:`GlobalEvents`: ``key``,
        ``event_types``) and one ``[on.EVENT_TYPE]`` table per event type
        mapping field names to expressions (plus an optional ``require``).
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
                                      "columns", "rate_table", "global"})
        if unknown:
            msg = f"{source}: unknown section(s) {unknown}"
            raise RuleError(msg)
        head = data.get("ruleset", {})
        if "name" not in head:
            msg = f"{source}: [ruleset] needs a name"
            raise RuleError(msg)
        bad_head = sorted(set(head) - {"name", "key", "require", "description", "where",
                                       "ignore"})
        if bad_head:
            msg = f"{source}: [ruleset] has unknown key(s) {bad_head}"
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
        shared = data.get("global")
        if shared is not None:
            extra = sorted(set(shared) - {"key", "event_types"}) if isinstance(
                shared, Mapping) else ["(not a table)"]
            if extra or "key" not in shared:
                msg = (f"{source}: [global] takes key (the key value of global events) and "
                       f"optional event_types; got {sorted(shared) if not extra else extra}")
                raise RuleError(msg)
            shared = GlobalEvents(key_value(shared["key"]), None if shared.get(
                "event_types") is None else tuple(shared["event_types"]))
        key = head.get("key", "account_id")
        return cls(
            name=head["name"],
            key=key if isinstance(key, str) else tuple(key),
            global_events=shared,
            where=head.get("where"),
            ignore=tuple(head.get("ignore", ())),
            require=head.get("require"),
            description=head.get("description", ""),
            params=dict(data.get("params", {})),
            fields=tuple(fields),
            handlers=tuple(handlers),
            interest=interest_obj,
            rate_table=read_rate_table(data.get("rate_table"), source),
            columns=dict(data.get("columns", {})),
            source=source,
        )


@dataclass(frozen=True)
class CheckedRules:
    """A rule set whose expressions are parsed and type-checked.

    ``assignments[event_type]`` lists (field, expression) pairs;
    ``requirements[event_type]`` is the requirement in force (or None);
    ``selection`` the parsed ``where`` (or None). ``linear`` is true when,
    for every field, all assignments add an event-only amount to it, or all
    set it from the event alone, and there is no requirement and no interest:
    then each event's effect is a vectorized Polars expression and the fold
    is a running sum (or a forward fill) per key. ``strings`` lists the text
    values the rules name (literals, initial values of string fields): the
    engines code them first, so their codes never depend on the data.
    """

    rules: RuleSet
    fields: Mapping[str, Field]
    scope: Scope
    assignments: Mapping[str, tuple[tuple[str, Expr], ...]]
    requirements: Mapping[str, Expr | None]
    linear: bool
    selection: Expr | None = None
    strings: tuple[str, ...] = ()

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The event columns of type ``string`` the rules read (in the engine: as codes)."""
        read = {c for pairs in self.assignments.values() for _, e in pairs for c in e.columns}
        read |= {c for r in self.requirements.values() if r is not None for c in r.columns}
        return tuple(sorted(c for c in read if self.scope.columns.get(c) == "string"))

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
        _check_key(rules, fields, src)
        clash = sorted((set(fields) | set(rules.params)) & (_RESERVED | set(rules.columns)))
        if clash:
            msg = f"{src}: names {clash} are reserved for event columns or 'require'"
            raise RuleError(msg)
        clash = sorted(set(fields) & set(rules.params))
        if clash:
            msg = f"{src}: {clash} named both a parameter and a state field; rename one"
            raise RuleError(msg)
        for name, typ in rules.columns.items():
            if typ not in COLUMN_TYPES:
                msg = (f"{src}: column {name!r} must be of type {', '.join(COLUMN_TYPES)}, "
                       f"not {typ!r}")
                raise RuleError(msg)
        for name, value in rules.params.items():
            _check_number(f"{src}: parameter {name!r}", value)
        for ignored in rules.ignore:
            _check_type_name(ignored, f"{src}, ignore")
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
            _check_type_name(h.event_type, where)
            if h.event_type in assignments:
                msg = f"{where}: event type handled twice"
                raise RuleError(msg)
            pairs = []
            for target, text in h.set.items():
                if target not in fields:
                    msg = f"{where}: assigns unknown field {target!r} (fields: {sorted(fields)})"
                    raise RuleError(msg)
                expr = parse(str(text), scope, where=f"{where}, field {target}")
                _check_assignment(fields[target], expr, where, fields)
                pairs.append((target, _simplified(expr, scope, f"{where}, field {target}")))
            assignments[h.event_type] = tuple(pairs)
            if h.require is None:
                requirements[h.event_type] = default_req
            else:
                requirements[h.event_type] = (_parse(h.require, scope, where=f"{where}, require")
                                              if h.require else None)
        for req in requirements.values():
            if req is not None and req.typ not in ("int", "float"):
                msg = f"{src}: requirement {req.text!r} is not a condition"
                raise RuleError(msg)
        if rules.interest is not None:
            _check_interest(rules.interest, fields, src)
        _check_global(rules, src)
        selection = _selection(rules, scope, src)
        kinds: dict[str, set[str | None]] = {}
        for assigned in assignments.values():
            for target, expr in assigned:
                kinds.setdefault(target, set()).add(_linear_kind(target, expr))
        linear = (
            rules.interest is None
            and all(r is None for r in requirements.values())
            and all(k - {"keep"} in ({"add"}, {"set"}, set()) for k in kinds.values())
        )
        exprs = [e for pairs in assignments.values() for _, e in pairs]
        exprs += [r for r in requirements.values() if r is not None]
        texts = [str(f.start) for f in rules.fields if f.type == "string"]
        texts += [t for e in exprs for t in e.texts]
        return cls(rules, fields, scope, assignments, requirements, linear, selection,
                   tuple(dict.fromkeys(texts)))


def _check_type_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _TYPE_NAME.fullmatch(name):
        msg = (f"{where}: {name!r} is not an event type (a handler names one type, exactly "
               "as the events spell it; wildcards such as '*' are not supported)")
        raise RuleError(msg)


def _check_key(rules: RuleSet, fields: Mapping[str, Field], src: str) -> None:
    columns = rules.key_columns
    if not columns or not all(isinstance(c, str) and c for c in columns) \
            or len(set(columns)) != len(columns):
        msg = (f"{src}: key must name a column, or distinct columns (a composite key), "
               f"not {rules.key!r}")
        raise RuleError(msg)
    clash = sorted(set(columns) & (set(fields) | set(rules.params) | {"require"}))
    if clash:
        msg = f"{src}: key column(s) {clash} clash with a state field or parameter"
        raise RuleError(msg)


def _check_global(rules: RuleSet, src: str) -> None:
    shared = rules.global_events
    if shared is None:
        return
    values = shared.key if isinstance(shared.key, tuple) else (shared.key,)
    if len(values) != len(rules.key_columns) or not all(
            isinstance(v, int | str) for v in values):
        msg = (f"{src}: global events' key {shared.key!r} must be one value per key column "
               f"{list(rules.key_columns)} (integers or text)")
        raise RuleError(msg)
    for name in shared.event_types or ():
        _check_type_name(name, f"{src}, global event_types")


def _selection(rules: RuleSet, scope: Scope, src: str) -> Expr | None:
    if rules.where is None:
        return None
    only_events = Scope(fields={}, columns=scope.columns, params=scope.params, enums={})
    selection = _parse(rules.where, only_events, where=f"{src}, where")
    if selection.typ not in ("int", "float"):
        msg = f"{src}, where: {rules.where!r} is not a condition"
        raise RuleError(msg)
    return selection


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
    if f.type not in ("int", "float", "enum", "string"):
        msg = (f"{src}: field {f.name!r} has unknown type {f.type!r} (int, float, enum or "
               "string)")
        raise RuleError(msg)
    if f.type == "string" and not isinstance(f.start, str):
        msg = f"{src}: initial value of string field {f.name!r} must be text"
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


def _check_assignment(target: Field, expr: Expr, where: str, fields: Mapping[str, Field]
                      ) -> None:
    if target.type == "string" or expr.typ == "string":
        if target.type != "string" or expr.typ not in ("string", "enum") or (
                expr.typ == "enum" and expr.enum is not None):
            msg = (f"{where}, field {target.name}: text goes only to a string field, and a "
                   "string field takes only text (a string column, field or literal)")
            raise RuleError(msg)
        return
    if expr.typ == "time":
        msg = (f"{where}, field {target.name}: a time is read through day(t), hour(t), "
               "month(t), year(t), weekday(t) or minute(t)")
        raise RuleError(msg)
    if target.type == "enum":
        if expr.typ != "enum":
            msg = f"{where}, field {target.name}: assigns a number to a named-value field"
            raise RuleError(msg)
        if expr.enum is not None and fields[expr.enum].values != target.values:
            msg = (f"{where}, field {target.name}: assigns a value of {expr.enum} "
                   f"{list(fields[expr.enum].values)}, not one of {list(target.values)}")
            raise RuleError(msg)
        bad = [v for v in _results(expr.node) if v not in target.values]
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


def _results(node: ast.expr) -> list[str]:
    """The text literals an expression can give as its value (not those it compares with)."""
    if isinstance(node, ast.IfExp):
        return _results(node.body) + _results(node.orelse)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    return []


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
