"""The rule expression language: parsed and type-checked, never ``eval``-ed.

Rule expressions are written in a small subset of Python syntax, parsed with
:func:`ast.parse` and accepted only if every node is on the whitelist below.

=================  ====================================================
kind               forms
=================  ====================================================
literals           ``12``, ``0.5``, ``'closed'``, ``True``
names              state fields, event columns, parameters of the rule set
arithmetic         ``+ - *``, ``/`` (float), ``//`` and ``%`` (integers), unary ``-``
comparison         ``< <= > >= == !=`` (one operator per comparison)
logic              ``and``, ``or``, ``not`` (on integers: 0 is false)
choice             ``a if cond else b``
functions          ``min(a, b)``, ``max(a, b)``, ``abs(x)``, ``float(x)``,
                   ``round_half_even(x)``, ``round_half_up(x)``, ``floor(x)``,
                   ``ceil(x)``, ``trunc(x)`` (float -> integer)
time parts         ``year(t)``, ``month(t)`` (1-12), ``day(t)`` (1-31),
                   ``hour(t)`` (0-23), ``minute(t)``, ``weekday(t)`` (1 =
                   Monday .. 7 = Sunday), of ``event_time`` or
                   ``recorded_at`` (in UTC)
=================  ====================================================

Types are ``int`` (money in minor units, counts, flags), ``float`` (rates),
``enum`` (a field with named values such as ``'open'``/``'closed'``, compared
and assigned by name), ``string`` (text: a payload column such as ``sku``,
``event_type``, or a string field; compared with ``==``/``!=`` and assigned to
string fields) and ``time`` (``event_time``, ``recorded_at``: read through the
time parts). An integer is never silently turned into a float where
exactness matters: assigning a float to an integer field needs a rounding
function, and a condition (``not``, ``and``, ``or``, the test of a choice) is an
integer or a comparison, never a float.

**Exact or an error.** Integers are Int64 and every operation is checked: a
result beyond Int64 raises :class:`~eventkit.exceptions.ReplayError`, never
wraps. So does a rounding function given NaN, ±∞ or a value beyond Int64.
Integer ``//`` and ``%`` by zero give 0, float ``/`` by zero gives ``inf``/``nan``
(floats follow IEEE 754: NaN compares false, except ``!=``). A null in an
event column reads as 0 (int), NaN (float) or the empty string (text).

**Evaluation.** Operands are computed left to right; ``a if c else b``
computes only the branch taken, and ``and``/``or`` stop at the operand that
decides — so ``amount * 1000 if amount < 1_000_000_000 else 0`` is a guard that works.
A rule is first simplified with its parameters' values
(:mod:`eventkit.rules.simplify`): a part whose value cannot change the result
(``x and 0``, a choice between equal values) is not computed. Every engine
and the reference fold follow these rules exactly.

**Limits** (:data:`LIMITS`): an expression has at most 4,000 characters, 512
syntax nodes and 64 levels of nesting (a sum of *n* terms nests *n* levels);
integer literals fit Int64 and float literals are finite. Anything beyond is a
:class:`~eventkit.exceptions.RuleError` naming the limit, at load time.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from eventkit.exceptions import ReplayError, RuleError

__all__ = ["LIMITS", "TIME_PARTS", "Expr", "Scope", "Typ", "derived_name", "evaluate", "parse",
           "static_type"]

Typ = Literal["int", "float", "enum", "string", "time"]

#: Parts of a time (UTC) rules may read: ``day(event_time)``. ``weekday``: 1 = Monday.
TIME_PARTS = ("year", "month", "day", "hour", "minute", "weekday")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Limits of one expression: characters, syntax nodes, nesting depth.
LIMITS = {"characters": 4_000, "nodes": 512, "depth": 64}


def _half_away(x: float) -> float:
    whole = math.floor(abs(x))
    return math.copysign(whole + 1 if abs(x) - whole >= 0.5 else whole, x)


#: Float -> integer rounding functions (``round_half_up`` rounds halves away
#: from zero, as ``decimal.ROUND_HALF_UP`` does).
ROUNDING: dict[str, Callable[[float], float]] = {
    "round_half_even": lambda x: float(round(x)),
    "round_half_up": _half_away,
    "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
    "trunc": lambda x: float(math.trunc(x)),
}
BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%"}
CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Scope:
    """What names mean inside an expression.

    ``fields`` and ``columns`` map names to types; ``enums`` maps an enum
    field to its values; ``params`` are constants of the rule set.
    """

    fields: Mapping[str, Typ]
    columns: Mapping[str, Typ]
    params: Mapping[str, int | float]
    enums: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Expr:
    """A checked expression: its syntax tree, result type and the names it reads."""

    text: str
    node: ast.expr
    typ: Typ
    enum: str | None  # for enum-typed expressions: the field whose values apply
    fields: frozenset[str]
    columns: frozenset[str]
    derived: frozenset[str] = frozenset()  # time parts read, as ``"day(event_time)"``
    texts: tuple[str, ...] = ()  # the text literals, in order

    @property
    def reads_state(self) -> bool:
        """True when the value depends on state fields (not only on the event)."""
        return bool(self.fields)


def parse(text: str, scope: Scope, *, where: str) -> Expr:
    """Parse and type-check ``text``; ``where`` prefixes error messages.

    Examples
    --------
    >>> s = Scope(fields={"balance": "int"}, columns={"amount": "int"}, params={}, enums={})
    >>> e = parse("balance + amount", s, where="rule Deposit")
    >>> e.typ, sorted(e.fields), sorted(e.columns)
    ('int', ['balance'], ['amount'])
    >>> parse("balance + __import__('os')", s, where="rule Deposit")
    Traceback (most recent call last):
    ...
    eventkit.RuleError: rule Deposit: unknown function '__import__' in "balance + __import__('os')"
    >>> parse("(" * 80 + "amount" + ")" * 80 + " + " + "-" * 80 + "1", s, where="rule Deposit")
    Traceback (most recent call last):
    ...
    eventkit.RuleError: rule Deposit: nesting deeper than the limit of 64 levels in ...

    """
    if len(text) > LIMITS["characters"]:
        msg = (f"{where}: expression of {len(text):,} characters, beyond the limit of "
               f"{LIMITS['characters']:,}: {_shown(text)}")
        raise RuleError(msg)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        msg = f"{where}: syntax error in {_shown(text)}: {exc.msg} (column {exc.offset})"
        raise RuleError(msg) from None
    except (RecursionError, MemoryError, ValueError) as exc:  # the parser's own limits
        msg = f"{where}: expression too complex to parse ({type(exc).__name__}): {_shown(text)}"
        raise RuleError(msg) from None
    _check_size(tree.body, text, where)
    checker = _Checker(scope, text, where)
    typ, enum = checker.visit(tree.body)
    texts = tuple(dict.fromkeys(n.value for n in ast.walk(tree.body)
                                if isinstance(n, ast.Constant) and isinstance(n.value, str)))
    return Expr(text, tree.body, typ, enum, frozenset(checker.fields),
                frozenset(checker.columns), frozenset(checker.derived), texts)


def derived_name(part: str, column: str) -> str:
    """The name of a time part's derived column, as the engines compute it: ``day(event_time)``."""
    return f"{part}({column})"


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut short when long."""
    return repr(text) if len(text) <= 120 else f"{text[:120]!r}..."


def _check_size(root: ast.expr, text: str, where: str) -> None:
    """Refuse trees beyond :data:`LIMITS` (walked without recursion)."""
    nodes, todo = 0, [(root, 1)]
    while todo:
        node, depth = todo.pop()
        nodes += 1
        if depth > LIMITS["depth"]:
            msg = (f"{where}: nesting deeper than the limit of {LIMITS['depth']} levels in "
                   f"{_shown(text)}")
            raise RuleError(msg)
        if nodes > LIMITS["nodes"]:
            msg = f"{where}: more than the limit of {LIMITS['nodes']} terms in {_shown(text)}"
            raise RuleError(msg)
        todo += [(child, depth + 1) for child in ast.iter_child_nodes(node)
                 if isinstance(child, ast.expr)]


class _Checker:
    def __init__(self, scope: Scope, text: str, where: str) -> None:
        self.scope = scope
        self.text = text
        self.where = where
        self.fields: set[str] = set()
        self.columns: set[str] = set()
        self.derived: set[str] = set()

    def fail(self, problem: str) -> RuleError:
        return RuleError(f"{self.where}: {problem} in {_shown(self.text)}")

    def visit(self, node: ast.AST) -> tuple[Typ, str | None]:
        if isinstance(node, ast.Constant):
            return self.literal(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            op = BINOPS[type(node.op)]
            left, right = self.number(node.left), self.number(node.right)
            if op == "/":
                return "float", None
            if op in ("//", "%") and "float" in (left, right):
                raise self.fail(f"'{op}' needs integers; use '/' for floats")
            return ("float" if "float" in (left, right) else "int"), None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.number(node.operand), None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.condition(node.operand)
            return "int", None
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.condition(value)
            return "int", None
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            self.condition(node.test)
            a, b = self.visit(node.body), self.visit(node.orelse)
            return self.unify(a, b)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(f"unsupported syntax '{ast.unparse(node)}'")

    def literal(self, value: object) -> tuple[Typ, str | None]:
        if isinstance(value, bool):
            return "int", None
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise self.fail(f"integer literal {value} is beyond Int64")
            return "int", None
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail("a float literal must be finite")
            return "float", None
        if isinstance(value, str):
            return "enum", None  # resolved against the enum it is compared with
        raise self.fail(f"unsupported literal {value!r}")

    def name(self, name: str) -> tuple[Typ, str | None]:
        scope = self.scope
        if name in scope.fields:
            self.fields.add(name)
            typ = scope.fields[name]
            return typ, (name if typ == "enum" else None)
        if name in scope.columns:
            self.columns.add(name)
            return scope.columns[name], None
        if name in scope.params:
            return ("float" if isinstance(scope.params[name], float) else "int"), None
        known = sorted({*scope.fields, *scope.columns, *scope.params})
        raise self.fail(f"unknown name '{name}' (known: {', '.join(known)})")

    def number(self, node: ast.AST) -> Typ:
        typ, _ = self.visit(node)
        if typ in ("enum", "string"):
            raise self.fail(f"'{ast.unparse(node)}' is a named value or text, not a number")
        if typ == "time":
            raise self.fail(f"'{ast.unparse(node)}' is a time: read a part of it, such as "
                            f"day({ast.unparse(node)}) ({', '.join(TIME_PARTS)})")
        return typ

    def condition(self, node: ast.AST) -> None:
        if self.number(node) == "float":
            raise self.fail(f"the condition '{ast.unparse(node)}' is a float; conditions are "
                            "integers or comparisons (write e.g. 'x != 0.0')")

    def compare(self, node: ast.Compare) -> tuple[Typ, None]:
        if len(node.ops) != 1 or type(node.ops[0]) not in CMPOPS:
            raise self.fail("use one comparison operator at a time")
        left, right = node.left, node.comparators[0]
        a, b = self.visit(left), self.visit(right)
        if "time" in (a[0], b[0]):
            self.number(left if a[0] == "time" else right)  # (fails, saying how)
        if {"enum", "string"} & {a[0], b[0]}:
            if CMPOPS[type(node.ops[0])] not in ("==", "!="):
                raise self.fail("named values and text compare only with == and !=")
            self.unify(a, b)
            for side, other in ((left, b[1]), (right, a[1])):
                self.literal_of(side, other)
        return "int", None

    def literal_of(self, node: ast.AST, enum: str | None) -> None:
        """Check that a string literal meeting enum ``enum`` is one of its values."""
        if enum is None or not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            return
        values = self.scope.enums[enum]
        if node.value not in values:
            raise self.fail(f"'{node.value}' is not a value of {enum} ({', '.join(values)})")

    def unify(self, a: tuple[Typ, str | None], b: tuple[Typ, str | None]
              ) -> tuple[Typ, str | None]:
        if "string" in (a[0], b[0]):  # text meets text, or a bare literal ('x')
            other = b if a[0] == "string" else a
            if other[0] == "string" or (other[0] == "enum" and other[1] is None):
                return "string", None
            raise self.fail("cannot mix text with a number or a named value")
        if "time" in (a[0], b[0]):
            raise self.fail("a time is read through its parts, such as day(event_time)")
        if a[0] == "enum" or b[0] == "enum":
            if a[0] != b[0]:
                raise self.fail("cannot mix a named value with a number")
            if a[1] and b[1] and a[1] != b[1] and self.scope.enums[a[1]] != self.scope.enums[b[1]]:
                raise self.fail(f"cannot mix values of {a[1]} and {b[1]}")
            return "enum", a[1] or b[1]
        return ("float" if "float" in (a[0], b[0]) else "int"), None

    def call(self, node: ast.Call) -> tuple[Typ, None]:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail("only plain calls of the listed functions are allowed")
        name, args = node.func.id, node.args
        if name in TIME_PARTS:
            if len(args) != 1 or not isinstance(args[0], ast.Name) or self.visit(args[0])[0] \
                    != "time":
                raise self.fail(f"{name}() takes a time column, such as event_time")
            self.columns.discard(args[0].id)  # read through the part only
            self.derived.add(derived_name(name, args[0].id))
            return "int", None
        arity = {"min": 2, "max": 2, "abs": 1, "float": 1, **dict.fromkeys(ROUNDING, 1)}
        if name not in arity:
            raise self.fail(f"unknown function '{name}'")
        if len(args) != arity[name]:
            raise self.fail(f"{name}() takes {arity[name]} argument(s)")
        types = [self.number(a) for a in args]
        if name in ROUNDING:
            return "int", None
        if name == "float":
            return "float", None
        return ("float" if "float" in types else "int"), None


def static_type(node: ast.expr, scope: Scope) -> str:
    """Static type of a checked syntax tree: ``int`` (incl. enums and flags) or ``float``."""
    if isinstance(node, ast.Constant):
        return "float" if isinstance(node.value, float) else "int"
    if isinstance(node, ast.Name):
        if node.id in scope.params:
            return "float" if isinstance(scope.params[node.id], float) else "int"
        typ = scope.fields.get(node.id) or scope.columns.get(node.id)
        return "float" if typ == "float" else "int"
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Div):
            return "float"
        kinds = {static_type(node.left, scope), static_type(node.right, scope)}
        return "float" if "float" in kinds else "int"
    if isinstance(node, ast.UnaryOp):
        return "int" if isinstance(node.op, ast.Not) else static_type(node.operand, scope)
    if isinstance(node, ast.BoolOp | ast.Compare):
        return "int"
    if isinstance(node, ast.IfExp):
        kinds = {static_type(node.body, scope), static_type(node.orelse, scope)}
        return "float" if "float" in kinds else "int"
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        if name in ROUNDING:
            return "int"
        if name == "float":
            return "float"
        kinds = {static_type(a, scope) for a in node.args}
        return "float" if "float" in kinds else "int"
    return "int"


def evaluate(expr: Expr | ast.expr, env: Mapping[str, Any], scope: Scope) -> Any:
    """Evaluate a checked expression (or a part of its tree) in plain Python.

    The reference fold's evaluator (the engines use it only to say exactly why
    a value they computed column-wise cannot be computed).

    ``env`` maps names to values (enum fields hold their value's name);
    ``scope`` gives the static types. Integer results are checked against
    Int64 (:class:`~eventkit.exceptions.ReplayError`), choices and ``and``/``or``
    compute only what they need (see the module docstring).

    >>> s = Scope(fields={"b": "int"}, columns={}, params={}, enums={})
    >>> evaluate(parse("b * 2 if b < 10 else 0", s, where="x"), {"b": 2**62}, s)
    0
    >>> evaluate(parse("b * 2", s, where="x"), {"b": 2**62}, s)
    Traceback (most recent call last):
    ...
    eventkit.ReplayError: integer overflow: 4611686018427387904 * 2 is beyond Int64
    """
    return _Eval(env, scope).visit(expr.node if isinstance(expr, Expr) else expr)


class _Eval:
    def __init__(self, env: Mapping[str, Any], scope: Scope) -> None:
        self.env = env
        self.scope = scope

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return int(node.value) if isinstance(node.value, bool) else node.value
        if isinstance(node, ast.Name):
            return self.env[node.id]
        if isinstance(node, ast.BinOp):
            left = self.visit(node.left)
            return binop(BINOPS[type(node.op)], left, self.visit(node.right))
        if isinstance(node, ast.UnaryOp):
            value = self.visit(node.operand)
            return negate(value) if isinstance(node.op, ast.USub) else int(value == 0)
        if isinstance(node, ast.BoolOp):
            decides = 0 if isinstance(node.op, ast.And) else 1
            for value in node.values:
                if (self.visit(value) != 0) == bool(decides):
                    return decides
            return 1 - decides
        if isinstance(node, ast.Compare):
            a = self.visit(node.left)
            return int(compare(CMPOPS[type(node.ops[0])], a, self.visit(node.comparators[0])))
        if isinstance(node, ast.IfExp):
            value = self.visit(node.body if self.visit(node.test) != 0 else node.orelse)
            return float(value) if static_type(node, self.scope) == "float" else value
        if isinstance(node, ast.Call):
            name = node.func.id  # type: ignore[attr-defined]
            args = [self.visit(a) for a in node.args]
            if name in TIME_PARTS:
                return time_part(name, args[0])
            return call(name, args)
        msg = f"cannot evaluate {ast.unparse(node)}"
        raise RuleError(msg)


def checked(value: int, what: str) -> int:
    """``value`` when it fits Int64, else :class:`~eventkit.exceptions.ReplayError` for ``what``."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    msg = f"integer overflow: {what} is beyond Int64"
    raise ReplayError(msg)


def _floats(a: Any, b: Any) -> tuple[Any, Any]:
    """Both as floats when either is one (an int meets a float as a float, as in the engines)."""
    if isinstance(a, float) or isinstance(b, float):
        return float(a), float(b)
    return a, b


def binop(op: str, a: Any, b: Any) -> Any:
    """Apply an arithmetic operator with the language's semantics (see module doc)."""
    if op == "/":
        a, b = float(a), float(b)
        if b == 0.0:
            return math.nan if a == 0.0 or math.isnan(a) else math.copysign(math.inf, a) * (
                math.copysign(1.0, b))
        return a / b
    a, b = _floats(a, b)
    if isinstance(a, float):
        return {"+": a + b, "-": a - b, "*": a * b}[op]
    if op in ("//", "%") and b == 0:
        return 0
    value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
             "//": lambda: a // b, "%": lambda: a % b}[op]()
    return checked(value, f"{a} {op} {b}")


def negate(value: Any) -> Any:
    """Unary minus, checked for integers."""
    return -value if isinstance(value, float) else checked(-value, f"-({value})")


def compare(op: str, a: Any, b: Any) -> bool:
    """Apply a comparison operator (IEEE 754 for floats: NaN compares false but for ``!=``)."""
    a, b = _floats(a, b)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b,
            "!=": a != b}[op]


def time_part(name: str, t: datetime) -> int:
    """A part of an aware datetime, in UTC (what ``day(event_time)`` means)."""
    utc = t.astimezone(UTC)
    if name == "weekday":
        return utc.isoweekday()
    return int(getattr(utc, name))


def call(name: str, args: list[Any]) -> Any:
    """Apply a built-in function."""
    if name in ("min", "max"):
        a, b = _floats(*args)
        keep_a = a <= b if name == "min" else a >= b
        return a if keep_a else b
    if name == "abs":
        return abs(args[0]) if isinstance(args[0], float) else checked(
            abs(args[0]), f"abs({args[0]})")
    if name == "float":
        return float(args[0])
    return round_to_int(name, float(args[0]))


def round_to_int(mode: str, value: float) -> int:
    """``value`` rounded by ``mode`` (a :data:`ROUNDING` name) to an Int64, or ReplayError."""
    if not math.isfinite(value):
        msg = f"{mode}() of {value} (not a finite number) cannot be an integer"
        raise ReplayError(msg)
    return checked(int(ROUNDING[mode](value)), f"{mode}({value!r})")
