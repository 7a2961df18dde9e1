"""Compile checked rules for the engines: Polars expressions and rule programs.

Two targets share one syntax tree (from :mod:`eventkit.rules.expr`):

* :func:`polars_expr` turns an event-only expression into a vectorized Polars
  expression (the linear path: each event's delta is computed column-wise);
* :func:`compile_program` turns every handler into a small stack program that
  :func:`eventkit.replay.kernels.run_rules` interprets in one compiled pass (the
  non-linear path: thresholds, status machines, per-posting rounding).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard, cast

import numpy as np

from eventkit.exceptions import RuleError
from eventkit.replay import kernels as K
from eventkit.rules.expr import (
    BINOPS,
    CMPOPS,
    ROUNDING,
    TIME_PARTS,
    binop,
    call,
    compare,
    derived_name,
)
from eventkit.rules.model import CheckedRules, Field, static_type

__all__ = ["Program", "compile_program"]

_STACK = 64
_BIN_I = {"+": K.ADD_I, "-": K.SUB_I, "*": K.MUL_I, "//": K.FDIV_I, "%": K.MOD_I}
_BIN_F = {"+": K.ADD_F, "-": K.SUB_F, "*": K.MUL_F, "/": K.DIV_F}


# --------------------------------------------------------------------------- program target
@dataclass(frozen=True)
class Program:
    """Rule programs of all handlers, and the layout of state and columns.

    ``event_types[t]`` is handled by ``code[prog[t]:prog[t + 1]]``: instructions,
    one row (opcode, a, b, c) each (see :mod:`eventkit.replay.kernels`); an event it
    refuses gets violation code ``refusal[t]``, explained by
    ``violations[refusal[t] - 1]``. ``int_fields`` and ``float_fields`` name the
    state fields (enum fields are int fields holding value codes); in a key's
    state row, int field ``i`` is slot ``i`` and float field ``j`` slot
    ``len(int_fields) + j``. ``int_columns`` and ``float_columns`` are the event
    columns read; ``consts_f`` the float constants.
    """

    event_types: tuple[str, ...]
    code: np.ndarray
    prog: np.ndarray
    refusal: np.ndarray
    consts_f: np.ndarray
    int_fields: tuple[str, ...]
    float_fields: tuple[str, ...]
    int_columns: tuple[str, ...]
    float_columns: tuple[str, ...]
    init_i: np.ndarray
    init_f: np.ndarray
    interest: np.ndarray
    violations: tuple[str, ...]


def compile_program(checked: CheckedRules) -> Program:
    """Compile every handler of ``checked`` into one rule program.

    A handler's program checks its requirement, then assigns its fields. All
    new values come from the old state (simultaneous assignment): a value that
    reads another assigned field is computed before any field is stored; one
    that reads no field but its own target (``balance + amount``) is computed
    and stored last, in place. A requirement or an in-place assignment of a
    common form becomes one fused instruction (:func:`fuse`).
    """
    fields = checked.fields
    int_fields = tuple(n for n, f in fields.items() if f.type in ("int", "enum", "string"))
    float_fields = tuple(n for n, f in fields.items() if f.type == "float")
    exprs = [e for pairs in checked.assignments.values() for _, e in pairs]
    exprs += [r for r in checked.requirements.values() if r is not None]
    used = {c for e in exprs for c in e.columns}
    # text columns are read as codes, time parts as columns of their own: both integers
    int_columns = tuple(sorted({c for c in used if checked.scope.columns[c] != "float"}
                               | {d for e in exprs for d in e.derived}))
    float_columns = tuple(sorted(c for c in used if checked.scope.columns[c] == "float"))
    asm = _Assembler(checked, int_fields, float_fields, int_columns, float_columns)
    event_types = tuple(checked.assignments)
    code: list[Instruction] = []
    prog = [0]
    refusal = []
    violations: list[str] = []
    params = checked.scope.params
    for event_type in event_types:
        refusal.append(0)
        requirement = checked.requirements[event_type]
        if requirement is not None:
            test = fold_constants(requirement.node, params, checked)
            if not (isinstance(test, ast.Constant) and test.value):  # not always met
                asm.emit_expr(test, None)
                asm.emit(K.REQUIRE)
                code += fuse(asm.take())
                violations.append(f"{event_type} requires {requirement.text}")
                refusal[-1] = len(violations)
        computed: list[tuple[str, ast.expr]] = []
        in_place: list[tuple[str, ast.expr]] = []
        for target, expr in checked.assignments[event_type]:
            node = fold_constants(expr.node, params, checked)
            if isinstance(node, ast.Name) and node.id == target:
                continue  # the field keeps its value
            reads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in fields}
            (in_place if reads <= {target} else computed).append((target, node))
        if len(computed) > _STACK // 4:
            msg = f"rule on {event_type} assigns more than {_STACK // 4} fields"
            raise RuleError(msg)
        # Values that read other fields first, then their stores (in reverse: each store
        # pops its stack), then each value that reads no field but its own, stored at once:
        # no field is stored before every value that reads it is computed.
        for target, node in computed:
            asm.emit_value(target, node)
        for target, _ in reversed(computed):
            asm.emit_store(target)
        code += asm.take()
        for target, node in in_place:
            asm.emit_value(target, node)
            asm.emit_store(target)
            code += fuse(asm.take())
        prog.append(len(code))
    interest = np.array([0, 0, -1, -1, 0], np.int64)
    if checked.rules.interest is not None:
        spec = checked.rules.interest
        interest = np.array([
            1,
            asm.slot(spec.balance_field),
            asm.slot(spec.posted_field) if spec.posted_field else -1,
            asm.slot(spec.account_rate_field) if spec.account_rate_field else -1,
            K.ROUND_MODES.index(spec.rounding),
        ], np.int64)
    return Program(
        event_types=event_types,
        code=np.array(code, np.int64).reshape(-1, 4),
        prog=np.array(prog, np.int64),
        refusal=np.array(refusal, np.int32),
        consts_f=np.array(asm.consts_f or [0.0], np.float64),
        int_fields=int_fields,
        float_fields=float_fields,
        int_columns=int_columns,
        float_columns=float_columns,
        init_i=np.array([_initial_code(fields[n], checked) for n in int_fields], np.int64),
        init_f=np.array([float(fields[n].start) for n in float_fields], np.float64),
        interest=interest,
        violations=tuple(violations),
    )


Instruction = tuple[int, int, int, int]

# Instruction sequences, and the fused instruction doing the same: a pattern's names
# ("f", "c", "o") match any operand, the same one wherever a name repeats.
_FUSED: tuple[tuple[tuple[tuple[int, str], ...], tuple[int, str, str, str]], ...] = (
    (((K.FIELD_I, "f"), (K.PUSH_I, "c"), (K.CMP_I, "o"), (K.REQUIRE, "")),
     (K.REQ_FIELD_I, "f", "c", "o")),
    (((K.FIELD_I, "f"), (K.COL_I, "c"), (K.ADD_I, ""), (K.STORE_I, "f")),
     (K.ADD_COL_I, "f", "c", "")),
    (((K.COL_I, "c"), (K.FIELD_I, "f"), (K.ADD_I, ""), (K.STORE_I, "f")),
     (K.ADD_COL_I, "f", "c", "")),
    (((K.FIELD_I, "f"), (K.COL_I, "c"), (K.SUB_I, ""), (K.STORE_I, "f")),
     (K.SUB_COL_I, "f", "c", "")),
    (((K.FIELD_I, "f"), (K.PUSH_I, "c"), (K.ADD_I, ""), (K.STORE_I, "f")),
     (K.ADD_K_I, "f", "c", "")),
    (((K.PUSH_I, "c"), (K.FIELD_I, "f"), (K.ADD_I, ""), (K.STORE_I, "f")),
     (K.ADD_K_I, "f", "c", "")),
    (((K.PUSH_I, "c"), (K.STORE_I, "f")), (K.SET_K_I, "f", "c", "")),
    (((K.COL_I, "c"), (K.STORE_I, "f")), (K.SET_COL_I, "f", "c", "")),
    (((K.PUSH_F, "c"), (K.STORE_F, "f")), (K.SET_K_F, "f", "c", "")),
    (((K.COL_F, "c"), (K.STORE_F, "f")), (K.SET_COL_F, "f", "c", "")),
)


def fuse(code: list[Instruction]) -> list[Instruction]:
    """A whole requirement or assignment as one fused instruction, when it has a common form.

    ``code`` is one unit (it starts and ends with empty stacks); it is replaced
    only if a pattern of :data:`_FUSED` matches all of it, so fused
    instructions always stand where the stacks are empty (the interpreter
    relies on it).

    >>> fuse([(K.FIELD_I, 0, 0, 0), (K.COL_I, 2, 0, 0), (K.SUB_I, 0, 0, 0),
    ...       (K.STORE_I, 0, 0, 0)]) == [(K.SUB_COL_I, 0, 2, 0)]
    True
    """
    for pattern, (op, *operands) in _FUSED:
        if len(pattern) != len(code):
            continue
        bound: dict[str, int] = {}
        if all(got[0] == want and (not name or bound.setdefault(name, got[1]) == got[1])
               for (want, name), got in zip(pattern, code, strict=True)):
            a, b, c = (bound.get(name, 0) for name in operands)
            return [(op, a, b, c)]
    return code


def fold_constants(node: ast.expr, params: Mapping[str, int | float],
                   checked: CheckedRules) -> ast.expr:
    """Simplify a checked syntax tree with the parameters' values known.

    Constant sub-expressions are computed with the language's own semantics
    (:mod:`eventkit.rules.expr`), a choice with a constant test keeps its branch,
    ``and``/``or`` drop decided operands and integer ``x + 0``, ``x - 0``,
    ``x * 1`` become ``x``. The result means exactly what the input meant.

    >>> from eventkit import rules
    >>> checked = rules.get("banking").check()
    >>> node = checked.assignments["Withdrawal"][0][1].node
    >>> ast.unparse(fold_constants(node, checked.scope.params, checked))
    'balance - amount'
    """
    return _Folder(params, checked).visit(node)


def _const(node: ast.expr) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and not isinstance(node.value, str)


def _flag(node: ast.expr) -> bool:
    """True for expressions whose value is already 0 or 1."""
    return isinstance(node, ast.Compare | ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not))


class _Folder(ast.NodeTransformer):
    def __init__(self, params: Mapping[str, int | float], checked: CheckedRules) -> None:
        self.params = params
        self.checked = checked

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.params:
            return ast.Constant(self.params[node.id])
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        left: ast.expr = self.visit(node.left)
        right: ast.expr = self.visit(node.right)
        op = BINOPS[type(node.op)]
        if _const(left) and _const(right):
            return ast.Constant(binop(op, left.value, right.value))
        folded = ast.BinOp(left, node.op, right)
        if static_type(folded, self.checked) == "int":
            if op in ("+", "-") and _const(right) and right.value == 0:
                return left
            if op == "+" and _const(left) and left.value == 0:
                return right
            if op == "*" and _const(right) and right.value == 1:
                return left
        return folded

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        operand: ast.expr = self.visit(node.operand)
        if _const(operand):
            # _const: not a string, so a number (a checked literal, or a folded value)
            value = cast("int | float", operand.value)
            return ast.Constant(-value if isinstance(node.op, ast.USub) else int(not value))
        return ast.UnaryOp(node.op, operand)

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        left: ast.expr = self.visit(node.left)
        right: ast.expr = self.visit(node.comparators[0])
        if _const(left) and _const(right):
            op = CMPOPS[type(node.ops[0])]
            return ast.Constant(int(compare(op, left.value, right.value)))
        return ast.Compare(left, node.ops, [right])

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.expr:
        is_and = isinstance(node.op, ast.And)
        kept: list[ast.expr] = []
        for value in (self.visit(v) for v in node.values):
            if _const(value):
                if bool(value.value) != is_and:
                    return ast.Constant(int(not is_and))  # decides the result
                continue  # neutral
            kept.append(value)
        if not kept:
            return ast.Constant(int(is_and))
        if len(kept) == 1:
            only = kept[0]
            return only if _flag(only) else ast.Compare(only, [ast.NotEq()], [ast.Constant(0)])
        return ast.BoolOp(node.op, kept)

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        test: ast.expr = self.visit(node.test)
        body: ast.expr = self.visit(node.body)
        orelse: ast.expr = self.visit(node.orelse)
        if _const(test):
            return body if test.value else orelse
        if _const(body) and _const(orelse) and type(body.value) is type(orelse.value) \
                and body.value == orelse.value:
            return body
        return ast.IfExp(test, body, orelse)

    def visit_Call(self, node: ast.Call) -> ast.expr:
        args: list[ast.expr] = [self.visit(a) for a in node.args]
        values = [a.value for a in args if _const(a)]
        if len(values) == len(args):  # every argument is a constant
            name = node.func.id  # type: ignore[attr-defined]
            return ast.Constant(call(name, values))
        return ast.Call(node.func, args, [])


def _initial_code(field: Field, checked: CheckedRules) -> int:
    if field.type == "enum":
        return field.values.index(str(field.start))
    if field.type == "string":
        return checked.strings.index(str(field.start))
    return int(field.start)


#: Stands for "text" where an enum field is expected: string literals are read as text codes.
_TEXT = Field("#text", "string")


class _Assembler:
    def __init__(self, checked: CheckedRules, int_fields: tuple[str, ...],
                 float_fields: tuple[str, ...], int_columns: tuple[str, ...],
                 float_columns: tuple[str, ...]) -> None:
        self.checked = checked
        self.int_fields, self.float_fields = int_fields, float_fields
        self.int_columns, self.float_columns = int_columns, float_columns
        self.code: list[Instruction] = []
        self.consts_f: list[float] = []
        self.depth = 0

    def emit(self, op: int, arg: int = 0) -> None:
        self.code.append((op, arg, 0, 0))

    def take(self) -> list[Instruction]:
        """The code emitted since the last call."""
        code, self.code = self.code, []
        return code

    def slot(self, field: str) -> int:
        """The field's slot in a key's state row: int fields, then float fields."""
        if field in self.float_fields:
            return len(self.int_fields) + self.float_fields.index(field)
        return self.int_fields.index(field)

    def emit_value(self, target: str, node: ast.expr) -> None:
        """Code leaving the new value of field ``target`` on its stack."""
        field = self.checked.fields[target]
        want = "float" if field.type == "float" else "int"
        self.emit_expr(node, field if field.type in ("enum", "string") else None, want=want)

    def emit_store(self, target: str) -> None:
        self.emit(K.STORE_F if self.checked.fields[target].type == "float" else K.STORE_I,
                  self.slot(target))

    def emit_expr(self, node: ast.expr, enum: Field | None, *, want: str = "int") -> None:
        got = self.visit(node, enum)
        if want == "float" and got == "int":
            self.emit(K.I2F)

    def push_const(self, value: int | float) -> str:
        if isinstance(value, float):
            self.consts_f.append(value)
            self.emit(K.PUSH_F, len(self.consts_f) - 1)
            return "float"
        self.emit(K.PUSH_I, int(value))  # the value itself
        return "int"

    def visit(self, node: ast.expr, enum: Field | None) -> str:
        """Emit code leaving the value on the int or float stack; return which."""
        self.depth += 1
        if self.depth > _STACK // 2:
            msg = f"expression too deeply nested: {ast.unparse(node)}"
            raise RuleError(msg)
        try:
            if isinstance(node, ast.Constant):
                if isinstance(node.value, str):
                    target = enum or self.enum_for(node)
                    if target.type == "string":  # text: its code (rules' texts come first)
                        return self.push_const(self.checked.strings.index(node.value))
                    return self.push_const(target.values.index(node.value))
                # a checked rule's other literals are ints and bools (parse refuses the rest)
                number = cast("int | float", node.value)
                return self.push_const(number if isinstance(number, float) else int(number))
            if isinstance(node, ast.Name):
                return self.name(node.id)
            if isinstance(node, ast.BinOp):
                op = BINOPS[type(node.op)]
                if op == "/":
                    self.as_float(node.left, enum)
                    self.as_float(node.right, enum)
                    self.emit(K.DIV_F)
                    return "float"
                return self.arith(_BIN_I.get(op), _BIN_F.get(op), node.left, node.right, enum)
            if isinstance(node, ast.UnaryOp):
                if isinstance(node.op, ast.Not):
                    self.as_int(node.operand, enum)
                    self.emit(K.NOT)
                    return "int"
                got = self.visit(node.operand, enum)
                self.emit(K.NEG_F if got == "float" else K.NEG_I)
                return got
            if isinstance(node, ast.BoolOp):
                self.as_int(node.values[0], enum)
                for value in node.values[1:]:
                    self.as_int(value, enum)
                    self.emit(K.AND if isinstance(node.op, ast.And) else K.OR)
                return "int"
            if isinstance(node, ast.Compare):
                comparison = K.CMP_OPS.index(CMPOPS[type(node.ops[0])])
                left, right = node.left, node.comparators[0]
                side_enum = (self.enum_of(left) or self.enum_of(right)
                             or (_TEXT if self.is_text(left) or self.is_text(right) else enum))
                if "float" in (static_type(left, self.checked), static_type(right, self.checked)):
                    self.as_float(left, side_enum)
                    self.as_float(right, side_enum)
                    self.emit(K.CMP_F, comparison)
                else:
                    self.as_int(left, side_enum)
                    self.as_int(right, side_enum)
                    self.emit(K.CMP_I, comparison)
                return "int"
            if isinstance(node, ast.IfExp):
                self.as_int(node.test, enum)
                floats = "float" in (static_type(node.body, self.checked),
                                     static_type(node.orelse, self.checked))
                if floats:
                    self.as_float(node.body, enum)
                    self.as_float(node.orelse, enum)
                    self.emit(K.SEL_F)
                    return "float"
                self.as_int(node.body, enum)
                self.as_int(node.orelse, enum)
                self.emit(K.SEL_I)
                return "int"
            if isinstance(node, ast.Call):
                return self.call(node, enum)
            msg = f"cannot compile {ast.unparse(node)}"
            raise RuleError(msg)
        finally:
            self.depth -= 1

    def name(self, name: str) -> str:
        scope = self.checked.scope
        if name in scope.params:
            return self.push_const(scope.params[name])
        if name in scope.fields:
            if name in self.float_fields:
                self.emit(K.FIELD_F, self.slot(name))
                return "float"
            self.emit(K.FIELD_I, self.slot(name))
            return "int"
        if name in self.float_columns:
            self.emit(K.COL_F, self.float_columns.index(name))
            return "float"
        self.emit(K.COL_I, self.int_columns.index(name))
        return "int"

    def arith(self, op_i: int | None, op_f: int | None, left: ast.expr, right: ast.expr,
              enum: Field | None) -> str:
        floats = "float" in (static_type(left, self.checked), static_type(right, self.checked))
        if floats and op_f is not None:
            self.as_float(left, enum)
            self.as_float(right, enum)
            self.emit(op_f)
            return "float"
        assert op_i is not None
        self.as_int(left, enum)
        self.as_int(right, enum)
        self.emit(op_i)
        return "int"

    def call(self, node: ast.Call, enum: Field | None) -> str:
        name = node.func.id  # type: ignore[attr-defined]
        args = node.args
        if name in TIME_PARTS:  # a column of its own (see eventkit.replay.engine)
            column = args[0].id  # type: ignore[attr-defined]
            self.emit(K.COL_I, self.int_columns.index(derived_name(name, column)))
            return "int"
        if name in ROUNDING:
            self.as_float(args[0], enum)
            self.emit(K.ROUND, K.ROUND_MODES.index(name))
            return "int"
        if name == "float":
            self.as_float(args[0], enum)
            return "float"
        if name == "abs":
            got = self.visit(args[0], enum)
            self.emit(K.ABS_F if got == "float" else K.ABS_I)
            return got
        ops = {"min": (K.MIN_I, K.MIN_F), "max": (K.MAX_I, K.MAX_F)}[name]
        return self.arith(ops[0], ops[1], args[0], args[1], enum)

    def as_float(self, node: ast.expr, enum: Field | None) -> None:
        if self.visit(node, enum) == "int":
            self.emit(K.I2F)

    def as_int(self, node: ast.expr, enum: Field | None) -> None:
        self.visit(node, enum)

    def is_text(self, node: ast.expr) -> bool:
        """Whether ``node`` is text (a string column or field; a choice between such)."""
        if isinstance(node, ast.Name):
            scope = self.checked.scope
            return scope.fields.get(node.id, scope.columns.get(node.id)) == "string"
        if isinstance(node, ast.IfExp):
            return self.is_text(node.body) or self.is_text(node.orelse)
        return False

    def enum_of(self, node: ast.expr) -> Field | None:
        if isinstance(node, ast.Name):
            f = self.checked.fields.get(node.id)
            if f is not None and f.type == "enum":
                return f
        if isinstance(node, ast.IfExp):
            return self.enum_of(node.body) or self.enum_of(node.orelse)
        return None

    def enum_for(self, node: ast.Constant) -> Field:
        for f in self.checked.fields.values():
            if f.type == "enum" and node.value in f.values:
                return f
        msg = f"{node.value!r} is not a value of any enum field"
        raise RuleError(msg)
