"""Rules simplified with their parameters' values: what every engine and the oracle evaluate.

:func:`fold_constants` computes constant parts once, at load time, with the
language's own (checked) semantics, so a constant beyond Int64 or a rounding of
NaN is a :class:`~eventkit.exceptions.RuleError` before any event is read.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import TypeGuard, cast

from eventkit.exceptions import ReplayError, RuleError
from eventkit.rules.expr import BINOPS, CMPOPS, Scope, binop, call, compare, negate, static_type

__all__ = ["fold_constants"]


def fold_constants(node: ast.expr, scope: Scope, *, where: str) -> ast.expr:
    """Simplify a checked syntax tree with the parameters' values known.

    Constant sub-expressions are computed with the language's own semantics
    (:mod:`eventkit.rules.expr`), a choice with a constant test keeps its
    branch, a choice between equal constants becomes that constant,
    ``and``/``or`` drop decided operands and integer ``x + 0``, ``x - 0``,
    ``x * 1`` become ``x``. The result has the same value as the input; the
    parts dropped are those whose value cannot change it (the language
    computes only what the result needs). A constant that cannot be computed
    raises :class:`~eventkit.exceptions.RuleError` prefixed with ``where``.

    >>> s = Scope(fields={"balance": "int"}, columns={"amount": "int"}, params={"fee": 0},
    ...           enums={})
    >>> tree = ast.parse("balance - amount - (fee if balance < amount else 0)", mode="eval")
    >>> ast.unparse(fold_constants(tree.body, s, where="rule on Withdrawal"))
    'balance - amount'
    >>> big = ast.parse("amount * (4611686018427387904 * 2)", mode="eval")
    >>> fold_constants(big.body, s, where="x")
    Traceback (most recent call last):
    ...
    eventkit.RuleError: x: a constant cannot be computed: integer overflow: ...
    """
    try:
        return _Folder(scope).visit(node)
    except ReplayError as exc:
        msg = f"{where}: a constant cannot be computed: {exc}"
        raise RuleError(msg) from None


def _const(node: ast.expr) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and not isinstance(node.value, str)


def _flag(node: ast.expr) -> bool:
    """True for expressions whose value is already 0 or 1."""
    return isinstance(node, ast.Compare | ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not))


class _Folder(ast.NodeTransformer):
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.params: Mapping[str, int | float] = scope.params

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
        if static_type(folded, self.scope) == "int":
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
            return ast.Constant(negate(value) if isinstance(node.op, ast.USub)
                                else int(value == 0))
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
            chosen = body if test.value else orelse
            if static_type(ast.IfExp(test, body, orelse), self.scope) == "float" \
                    and static_type(chosen, self.scope) == "int":  # keep its type: float
                if _const(chosen):
                    return ast.Constant(float(cast("int", chosen.value)))
                return ast.Call(ast.Name("float"), [chosen], [])
            return chosen
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
