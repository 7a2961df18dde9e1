"""What every compiled pass shares: its numba options, a cache prefetch, checked Int64 arithmetic.

The checked operations are LLVM's ``llvm.s{add,sub,mul}.with.overflow``: the
result and an overflow flag in one instruction each, so the folds detect an
Int64 overflow exactly at the cost of a branch that is never taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

if TYPE_CHECKING:
    from numba.core.base import BaseContext
    from numba.core.typing.context import BaseContext as TypingContext
    from numba.core.typing.templates import Signature

__all__ = ["AHEAD", "LINE", "NO_TIME", "OPTS", "accumulate", "add_checked", "mul_checked",
           "prefetch", "sub_checked"]


class _Options(TypedDict):
    """The options every kernel is compiled with (typed: ``njit(**OPTS)`` is checked)."""

    cache: bool
    nogil: bool
    error_model: Literal["python", "numpy"]


OPTS: _Options = {"cache": True, "nogil": True, "error_model": "numpy"}
AHEAD = 8  # prefetch the state of the event this many visits ahead
LINE = 8  # int64 words per cache line
NO_TIME = np.iinfo(np.int64).min  # "no event yet", where a time is stored

Codegen = Callable[["BaseContext", ir.IRBuilder, "Signature", Sequence[ir.Value]], object]


@intrinsic
def _prefetch_intrinsic(typingctx: TypingContext, arr: types.Array, i: types.Integer
                        ) -> tuple[Signature, Codegen]:
    """Hint the CPU to fetch item ``i`` of C-contiguous ``arr``'s flat buffer; nothing else."""
    def codegen(context: BaseContext, builder: ir.IRBuilder, signature: Signature,
                args: Sequence[ir.Value]) -> object:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        item = builder.gep(ary.data, [args[1]])
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [i8p], ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        # for writing, kept in all cache levels, data (not instruction) cache
        builder.call(fn, [builder.bitcast(item, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.none(arr, i), codegen


_PAIR = types.Tuple((types.int64, types.boolean))


def _with_overflow(name: str) -> Codegen:
    """Code for ``llvm.<name>.with.overflow.i64``: (result, overflowed)."""
    def codegen(context: BaseContext, builder: ir.IRBuilder, signature: Signature,
                args: Sequence[ir.Value]) -> object:
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic(
            f"llvm.{name}.with.overflow", [i64],
            ir.FunctionType(ir.LiteralStructType([i64, ir.IntType(1)]), [i64, i64]))
        pair = builder.call(fn, list(args))
        return context.make_tuple(builder, _PAIR, [builder.extract_value(pair, 0),
                                                   builder.extract_value(pair, 1)])
    return codegen


@intrinsic
def _add_intrinsic(typingctx: TypingContext, x: types.Integer, y: types.Integer
                   ) -> tuple[Signature, Codegen]:
    return _PAIR(types.int64, types.int64), _with_overflow("sadd")


@intrinsic
def _sub_intrinsic(typingctx: TypingContext, x: types.Integer, y: types.Integer
                   ) -> tuple[Signature, Codegen]:
    return _PAIR(types.int64, types.int64), _with_overflow("ssub")


@intrinsic
def _mul_intrinsic(typingctx: TypingContext, x: types.Integer, y: types.Integer
                   ) -> tuple[Signature, Codegen]:
    return _PAIR(types.int64, types.int64), _with_overflow("smul")


# Compiled code calls an intrinsic without its typing context (numba supplies it); the
# stubs type a call as the typing function's own, so these casts give the compiled view.
prefetch = cast("Callable[[np.ndarray, int], None]", _prefetch_intrinsic)
#: ``x + y``, ``x - y``, ``x * y`` on Int64 and whether the true result is beyond Int64.
add_checked = cast("Callable[[int, int], tuple[int, bool]]", _add_intrinsic)
sub_checked = cast("Callable[[int, int], tuple[int, bool]]", _sub_intrinsic)
mul_checked = cast("Callable[[int, int], tuple[int, bool]]", _mul_intrinsic)


def accumulate(acc: float, x: float, subtract: bool) -> tuple[float, bool]:  # noqa: FBT001
    """``acc - x`` or ``acc + x``, and whether it overflowed (floats never do; ints: Int64).

    Compiled code only (see the overload below): one fold serves int and float fields.
    """
    raise NotImplementedError


@overload(accumulate)
def _accumulate(acc: Any, x: Any, subtract: Any) -> Callable[..., tuple[Any, bool]]:
    # the implementations repeat the parameters' annotations: numba compares signatures
    if isinstance(acc, types.Float):
        def floats(acc: Any, x: Any, subtract: Any) -> tuple[Any, bool]:
            return (acc - x) if subtract else (acc + x), False
        return floats

    def ints(acc: Any, x: Any, subtract: Any) -> tuple[Any, bool]:
        return sub_checked(acc, x) if subtract else add_checked(acc, x)
    return ints
