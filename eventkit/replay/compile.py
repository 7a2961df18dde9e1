"""Compile checked rules into a rule program for the interpreter.

:func:`compile_program` turns every handler into a small stack program that
:func:`eventkit.replay.interpreter.run_rules` runs in one compiled pass (the
non-linear path: thresholds, status machines, per-posting rounding); the linear
path's Polars expressions come from :mod:`eventkit.replay.to_polars`. Both take
the checked rules' trees, already simplified with the parameters' values
(:mod:`eventkit.rules.simplify`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import cast

import numpy as np

from eventkit.exceptions import RuleError
from eventkit.replay import interpreter as vm
from eventkit.rules.expr import BINOPS, CMPOPS, ROUNDING, TIME_PARTS, derived_name, static_type
from eventkit.rules.model import CheckedRules, Field

__all__ = ["Program", "compile_program"]

_STACK = 128  # the interpreter's stacks: 32 values held + an expression nested 64 deep fit
_BIN_I = {"+": vm.ADD_I, "-": vm.SUB_I, "*": vm.MUL_I, "//": vm.FDIV_I, "%": vm.MOD_I}
_BIN_F = {"+": vm.ADD_F, "-": vm.SUB_F, "*": vm.MUL_F, "/": vm.DIV_F}


@dataclass(frozen=True)
class Program:
    """Rule programs of all handlers, and the layout of state and columns.

    ``event_types[t]`` is handled by ``code[prog[t]:prog[t + 1]]``: instructions,
    one row (opcode, a, b, c, d) each (see :mod:`eventkit.replay.interpreter`); an
    event it refuses gets violation code ``refusal[t]``, explained by
    ``violations[refusal[t] - 1]``. ``int_fields`` and ``float_fields`` name the
    state fields (enum fields are int fields holding value codes); in a key's
    state row, int field ``i`` is slot ``i`` and float field ``j`` slot
    ``len(int_fields) + j``. ``int_columns`` and ``float_columns`` are the event
    columns read; ``consts_f`` the float constants. Instruction ``i`` comes from
    the rule ``origins[origin[i]]``: (the rule as written, the field it assigns
    or None for a requirement).
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
    origin: np.ndarray
    origins: tuple[tuple[str, str | None], ...]


def compile_program(checked: CheckedRules) -> Program:
    """Compile every handler of ``checked`` into one rule program.

    A handler's program checks its requirement, then assigns its fields. All
    new values come from the old state (simultaneous assignment): a value that
    reads another assigned field is computed before any field is stored; one
    that reads no field but its own target (``balance + amount``) is computed
    and stored last, in place. A requirement is checked part by part (see
    :meth:`_Assembler.require`); a part or an in-place assignment of a common
    form becomes one fused instruction (:func:`fuse`). A choice and
    ``and``/``or`` jump over what they do not need.
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
    origin: list[int] = []
    origins: list[tuple[str, str | None]] = []

    def add(unit: list[Instruction], rules: list[int], *, fused: bool) -> None:
        """Append a unit of code (fused when ``fused`` and it has a common form)."""
        merged = fuse(unit) if fused else unit
        code.extend(merged)
        origin.extend(rules if merged is unit else rules[:1])

    prog = [0]
    refusal = []
    violations: list[str] = []
    for event_type in event_types:
        refusal.append(0)
        requirement = checked.requirements[event_type]
        if requirement is not None:
            test = requirement.node
            if not (isinstance(test, ast.Constant) and test.value):  # not always met
                origins.append((f"on {event_type}: require {requirement.text}", None))
                asm.origin = len(origins) - 1
                unit = asm.require(test)
                code.extend(unit)
                origin.extend([asm.origin] * len(unit))
                violations.append(f"{event_type} requires {requirement.text}")
                refusal[-1] = len(violations)
        computed: list[tuple[str, ast.expr, int]] = []
        in_place: list[tuple[str, ast.expr, int]] = []
        for target, expr in checked.assignments[event_type]:
            node = expr.node
            if isinstance(node, ast.Name) and node.id == target:
                continue  # the field keeps its value
            origins.append((f"on {event_type}: {target} = {expr.text}", target))
            reads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in fields}
            (in_place if reads <= {target} else computed).append(
                (target, node, len(origins) - 1))
        if len(computed) > _STACK // 4:
            msg = f"rule on {event_type} assigns more than {_STACK // 4} fields"
            raise RuleError(msg)
        # Values that read other fields first, then their stores (in reverse: each store
        # pops its stack), then each value that reads no field but its own, stored at once:
        # no field is stored before every value that reads it is computed.
        for target, node, where in computed:
            asm.origin = where
            asm.emit_value(target, node)
        for target, _, where in reversed(computed):
            asm.origin = where
            asm.emit_store(target)
        add(*asm.take(), fused=False)
        for target, node, where in in_place:
            asm.origin = where
            asm.emit_value(target, node)
            asm.emit_store(target)
            add(*asm.take(), fused=True)
        prog.append(len(code))
    interest = np.array([0, 0, -1, -1, 0], np.int64)
    if checked.rules.interest is not None:
        spec = checked.rules.interest
        interest = np.array([
            1,
            asm.slot(spec.balance_field),
            asm.slot(spec.posted_field) if spec.posted_field else -1,
            asm.slot(spec.account_rate_field) if spec.account_rate_field else -1,
            vm.ROUND_MODES.index(spec.rounding),
        ], np.int64)
    return Program(
        event_types=event_types,
        code=np.array(code, np.int64).reshape(-1, 5),
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
        origin=np.array(origin, np.int64),
        origins=tuple(origins),
    )


Instruction = tuple[int, int, int, int, int]

# Instruction sequences, and the fused instruction doing the same: a pattern's names
# ("f", "c", "o") match any operand, the same one wherever a name repeats.
_FUSED: tuple[tuple[tuple[tuple[int, str], ...], tuple[int, str, str, str]], ...] = (
    (((vm.FIELD_I, "f"), (vm.PUSH_I, "c"), (vm.CMP_I, "o"), (vm.REQUIRE, "")),
     (vm.REQ_FIELD_I, "f", "c", "o")),
    (((vm.FIELD_I, "f"), (vm.COL_I, "c"), (vm.ADD_I, ""), (vm.STORE_I, "f")),
     (vm.ADD_COL_I, "f", "c", "")),
    (((vm.COL_I, "c"), (vm.FIELD_I, "f"), (vm.ADD_I, ""), (vm.STORE_I, "f")),
     (vm.ADD_COL_I, "f", "c", "")),
    (((vm.FIELD_I, "f"), (vm.COL_I, "c"), (vm.SUB_I, ""), (vm.STORE_I, "f")),
     (vm.SUB_COL_I, "f", "c", "")),
    (((vm.FIELD_I, "f"), (vm.PUSH_I, "c"), (vm.ADD_I, ""), (vm.STORE_I, "f")),
     (vm.ADD_K_I, "f", "c", "")),
    (((vm.PUSH_I, "c"), (vm.FIELD_I, "f"), (vm.ADD_I, ""), (vm.STORE_I, "f")),
     (vm.ADD_K_I, "f", "c", "")),
    (((vm.PUSH_I, "c"), (vm.STORE_I, "f")), (vm.SET_K_I, "f", "c", "")),
    (((vm.COL_I, "c"), (vm.STORE_I, "f")), (vm.SET_COL_I, "f", "c", "")),
    (((vm.PUSH_F, "c"), (vm.STORE_F, "f")), (vm.SET_K_F, "f", "c", "")),
    (((vm.COL_F, "c"), (vm.STORE_F, "f")), (vm.SET_COL_F, "f", "c", "")),
)


def fuse(code: list[Instruction]) -> list[Instruction]:
    """A whole requirement or assignment as one fused instruction, when it has a common form.

    ``code`` is one unit (it starts and ends with empty stacks); it is replaced
    only if a pattern of :data:`_FUSED` matches all of it, so fused
    instructions always stand where the stacks are empty (the interpreter
    relies on it).

    >>> fuse([(vm.FIELD_I, 0, 0, 0, 0), (vm.COL_I, 2, 0, 0, 0), (vm.SUB_I, 0, 0, 0, 0),
    ...       (vm.STORE_I, 0, 0, 0, 0)]) == [(vm.SUB_COL_I, 0, 2, 0, 0)]
    True
    """
    for pattern, (op, *operands) in _FUSED:
        if len(pattern) != len(code):
            continue
        bound: dict[str, int] = {}
        if all(got[0] == want and (not name or bound.setdefault(name, got[1]) == got[1])
               for (want, name), got in zip(pattern, code, strict=True)):
            a, b, c = (bound.get(name, 0) for name in operands)
            return [(op, a, b, c, 0)]
    return code


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
        self.origin_of: list[int] = []
        self.origin = -1  # the rule the instructions emitted now come from
        self.consts_f: list[float] = []

    def emit(self, op: int, arg: int = 0) -> None:
        self.code.append((op, arg, 0, 0, 0))
        self.origin_of.append(self.origin)

    def take(self) -> tuple[list[Instruction], list[int]]:
        """The code emitted since the last call, and each instruction's rule."""
        code, self.code = self.code, []
        origin, self.origin_of = self.origin_of, []
        return code, origin

    def jump(self, op: int) -> int:
        """Emit a jump whose target is set later (:meth:`land`); return where it is."""
        self.emit(op)
        return len(self.code) - 1

    def land(self, jump: int) -> None:
        """Point the jump at ``jump`` to the next instruction emitted."""
        op, _, b, c, d = self.code[jump]
        self.code[jump] = (op, len(self.code) - jump, b, c, d)

    def require(self, node: ast.expr) -> list[Instruction]:
        """Code refusing the event unless ``node`` holds, fused where it has a common form.

        ``a and b`` is ``a``'s requirement, then ``b``'s: the first one unmet
        refuses the event, and ``b`` is not computed (as ``and`` would not). ``a
        or b``, ``a`` a field compared with a constant, is one instruction that
        passes over ``b``'s requirement when ``a`` holds.
        """
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
            return [i for value in node.values for i in self.require(value)]
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            first = self.field_test(node.values[0])
            if first is not None:
                rest = node.values[1:]
                code = self.require(rest[0] if len(rest) == 1 else ast.BoolOp(ast.Or(), rest))
                return [(vm.PASS_FIELD_I, *first, len(code) + 1), *code]
        self.emit_expr(node, None)
        self.emit(vm.REQUIRE)
        return fuse(self.take()[0])

    def field_test(self, node: ast.expr) -> tuple[int, int, int] | None:
        """(slot, constant, comparison) when ``node`` compares an int field with a constant."""
        self.emit_expr(node, None)
        code = self.take()[0]
        if [i[0] for i in code] == [vm.FIELD_I, vm.PUSH_I, vm.CMP_I]:
            return code[0][1], code[1][1], code[2][1]
        return None

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
        self.emit(vm.STORE_F if self.checked.fields[target].type == "float" else vm.STORE_I,
                  self.slot(target))

    def emit_expr(self, node: ast.expr, enum: Field | None, *, want: str = "int") -> None:
        got = self.visit(node, enum)
        if want == "float" and got == "int":
            self.emit(vm.I2F)

    def push_const(self, value: int | float) -> str:
        if isinstance(value, float):
            self.consts_f.append(value)
            self.emit(vm.PUSH_F, len(self.consts_f) - 1)
            return "float"
        self.emit(vm.PUSH_I, int(value))  # the value itself
        return "int"

    def typ(self, node: ast.expr) -> str:
        return static_type(node, self.checked.scope)

    def visit(self, node: ast.expr, enum: Field | None) -> str:
        """Emit code leaving the value on the int or float stack; return which."""
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
                self.emit(vm.DIV_F)
                return "float"
            return self.arith(_BIN_I.get(op), _BIN_F.get(op), node.left, node.right, enum)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                self.visit(node.operand, enum)
                self.emit(vm.NOT)
                return "int"
            got = self.visit(node.operand, enum)
            self.emit(vm.NEG_F if got == "float" else vm.NEG_I)
            return got
        if isinstance(node, ast.BoolOp):
            return self.bool_op(node, enum)
        if isinstance(node, ast.Compare):
            comparison = vm.CMP_OPS.index(CMPOPS[type(node.ops[0])])
            left, right = node.left, node.comparators[0]
            side_enum = (self.enum_of(left) or self.enum_of(right)
                         or (_TEXT if self.is_text(left) or self.is_text(right) else enum))
            if "float" in (self.typ(left), self.typ(right)):
                self.as_float(left, side_enum)
                self.as_float(right, side_enum)
                self.emit(vm.CMP_F, comparison)
            else:
                self.visit(left, side_enum)
                self.visit(right, side_enum)
                self.emit(vm.CMP_I, comparison)
            return "int"
        if isinstance(node, ast.IfExp):  # test; JUMP_IF_ZERO else; body; JUMP end; else: ...
            self.visit(node.test, enum)
            to_else = self.jump(vm.JUMP_IF_ZERO)
            want = self.typ(node)
            self.emit_expr(node.body, enum, want=want)
            to_end = self.jump(vm.JUMP)
            self.land(to_else)
            self.emit_expr(node.orelse, enum, want=want)
            self.land(to_end)
            return want
        if isinstance(node, ast.Call):
            return self.call(node, enum)
        msg = f"cannot compile {ast.unparse(node)}"
        raise RuleError(msg)

    def bool_op(self, node: ast.BoolOp, enum: Field | None) -> str:
        """``a and b``: a; JUMP_IF_ZERO out; b; BOOL; JUMP end; out: PUSH 0 (``or``: 1)."""
        is_and = isinstance(node.op, ast.And)
        decided = []
        for value in node.values[:-1]:
            self.visit(value, enum)
            decided.append(self.jump(vm.JUMP_IF_ZERO if is_and else vm.JUMP_IF_NONZERO))
        self.visit(node.values[-1], enum)
        self.emit(vm.BOOL)
        to_end = self.jump(vm.JUMP)
        for jump in decided:
            self.land(jump)
        self.push_const(0 if is_and else 1)
        self.land(to_end)
        return "int"

    def name(self, name: str) -> str:
        scope = self.checked.scope
        if name in scope.fields:
            if name in self.float_fields:
                self.emit(vm.FIELD_F, self.slot(name))
                return "float"
            self.emit(vm.FIELD_I, self.slot(name))
            return "int"
        if name in self.float_columns:
            self.emit(vm.COL_F, self.float_columns.index(name))
            return "float"
        self.emit(vm.COL_I, self.int_columns.index(name))
        return "int"

    def arith(self, op_i: int | None, op_f: int | None, left: ast.expr, right: ast.expr,
              enum: Field | None) -> str:
        if "float" in (self.typ(left), self.typ(right)) and op_f is not None:
            self.as_float(left, enum)
            self.as_float(right, enum)
            self.emit(op_f)
            return "float"
        assert op_i is not None
        self.visit(left, enum)
        self.visit(right, enum)
        self.emit(op_i)
        return "int"

    def call(self, node: ast.Call, enum: Field | None) -> str:
        name = node.func.id  # type: ignore[attr-defined]
        args = node.args
        if name in TIME_PARTS:  # a column of its own (see eventkit.replay.engine)
            column = args[0].id  # type: ignore[attr-defined]
            self.emit(vm.COL_I, self.int_columns.index(derived_name(name, column)))
            return "int"
        if name in ROUNDING:
            self.as_float(args[0], enum)
            self.emit(vm.ROUND, vm.ROUND_MODES.index(name))
            return "int"
        if name == "float":
            self.as_float(args[0], enum)
            return "float"
        if name == "abs":
            got = self.visit(args[0], enum)
            self.emit(vm.ABS_F if got == "float" else vm.ABS_I)
            return got
        ops = {"min": (vm.MIN_I, vm.MIN_F), "max": (vm.MAX_I, vm.MAX_F)}[name]
        return self.arith(ops[0], ops[1], args[0], args[1], enum)

    def as_float(self, node: ast.expr, enum: Field | None) -> None:
        if self.visit(node, enum) == "int":
            self.emit(vm.I2F)

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
