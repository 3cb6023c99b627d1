"""py-evm's Prague VM with a leaner interpreter loop, for the sim's py-evm chains (``PyEvmChain``).

The same EVM, opcode for opcode: the opcode table, the logic functions, the gas schedule, the
precompiles and the state are py-evm's own; what changes is only the Python around them, where a
profiled eth-crash run (seed 7, py-spy) spent a third of its samples:

- **The dispatch loop** (``apply_computation``): py-evm iterates a generator over the code, looks
  the opcode up, calls it by keyword, and each ``_FastOpcode.__call__`` calls
  ``computation.consume_gas`` -> ``GasMeter.consume_gas`` (a sign check and a debug-log check)
  before its logic. Here the loop reads the byte itself and charges a plain opcode's constant gas
  inline (the same ``OutOfGas`` text when it cannot), then calls its logic function; every other
  opcode (calls, creates, ``SSTORE``, anything with dynamic gas) is called as py-evm calls it.
- **JUMPDEST analysis** (``SimCodeStream.is_valid_opcode``): py-evm decides per computation whether
  a jump target lies in PUSH data by looking back up to 32 bytes, recursively, caching per
  computation (~6% of a run: every call frame into a 20 kB contract starts over). Here one
  linear pass per distinct code marks where instructions begin (the same answer: a position is
  valid iff no valid PUSH covers it), kept for the process.
- **The stack** (``SimStack``): ``pop_ints`` without a generator, ``push_int`` with its range check
  inline; ``computation.stack_*`` as plain attributes (py-evm makes each a property returning the
  stack's bound method: a lookup and a call per use); PUSH1-32 read the code and push in one
  function (py-evm: ``push_n`` -> ``push_XX`` -> ``code.read`` -> ``push_bytes``).
- **Memory** (``extend_memory``): an MLOAD/MSTORE inside memory already returns at once (py-evm
  validates, rounds and prices both sizes, then finds nothing to charge or grow).

Instructions for one eth-crash run (cachegrind, BENCHMARKS.md): 151.4 G before (with eth-hash's
pycryptodome keccak), 95.7 G with the loop, the JUMPDEST analysis, the stack and pysha3's keccak,
89.9 G with the pushes, memory and the sender recovered once (``sim.chain.pyevm``).

With py-evm's debug2 logging on (a debugging session), the loop and the gas meter are py-evm's
own, so their logs are as before. ``tests/test_pyevm_vm.py`` holds blocks of transactions (and
all of eth-crash, deployed from scratch: every block's state, receipts and transactions roots, gas
and bloom, and every recorded event) equal on this VM and on the stock one.
"""
from __future__ import annotations

from typing import Any

from eth.exceptions import FullStack, Halt, InsufficientStack, OutOfGas
from eth.vm.code_stream import CodeStream
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.state import PragueState
from eth.vm.gas_meter import GasMeter
from eth.vm.logic import stack as stack_logic
from eth.vm.logic.invalid import InvalidOpcode
from eth.vm.opcode import _FastOpcode
from eth.vm.stack import Stack, to_int
from eth_utils import ValidationError

UINT_256_MAX = 2**256 - 1
_PUSH1, _PUSH32 = 0x60, 0x7F

_NO_RESULT = object()
_STARTS: dict[bytes, bytearray] = {}  # code -> 1 where an instruction begins (not PUSH data)
_STARTS_LIMIT = 4096


def instruction_starts(code: bytes) -> bytearray:
    """1 at every position of ``code`` where an instruction begins, 0 inside PUSH data (memoised)."""
    mask = _STARTS.get(code)
    if mask is None:
        n = len(code)
        mask = bytearray(n)
        i = 0
        while i < n:
            mask[i] = 1
            op = code[i]
            i += op - _PUSH1 + 2 if _PUSH1 <= op <= _PUSH32 else 1
        if len(_STARTS) >= _STARTS_LIMIT:
            _STARTS.clear()
        _STARTS[code] = mask
    return mask


class SimCodeStream(CodeStream):
    """py-evm's ``CodeStream`` whose jump-target check reads the code's memoised instruction starts."""

    __slots__ = ["_starts"]

    def __init__(self, code_bytes: bytes) -> None:
        super().__init__(code_bytes)
        self._starts: bytearray | None = None

    def is_valid_opcode(self, position: int) -> bool:
        if position >= self._length_cache:
            return False
        starts = self._starts
        if starts is None:
            starts = self._starts = instruction_starts(self._raw_code_bytes)
        return bool(starts[position])


class SimStack(Stack):
    """py-evm's ``Stack`` with ``pop_ints``/``pop1_int``/``push_int`` written out (same results, same errors)."""

    def push_int(self, value: int) -> None:
        values = self.values
        if len(values) > 1023:
            raise FullStack("Stack limit reached")
        if not 0 <= value <= UINT_256_MAX:
            raise ValidationError("Invalid Stack Item: Must be a 256 bit integer. Got {value!r}")
        values.append(value)

    def pop1_int(self) -> int:
        try:
            x = self.values.pop()
        except IndexError:
            raise InsufficientStack("Wanted 1 stack item, had none") from None
        return x if x.__class__ is int else to_int(x)

    def pop_ints(self, num_items: int) -> tuple[int, ...]:
        if num_items < 1:  # py-evm's slices pop the whole stack for 0: its own answer, quirk and all
            return super().pop_ints(num_items)
        values = self.values
        if num_items > len(values):
            raise InsufficientStack(f"Wanted {num_items} stack items, only had {len(values)}")
        pop = values.pop
        if num_items == 2:
            a, b = pop(), pop()
            return (a if a.__class__ is int else to_int(a), b if b.__class__ is int else to_int(b))
        out = []
        for _ in range(num_items):
            x = pop()
            out.append(x if x.__class__ is int else to_int(x))
        return tuple(out)


def _push_of(size: int) -> Any:
    """py-evm's ``push_XX(computation, size)`` for one size: the code's next ``size`` bytes (zero
    padded past the end) pushed as bytes, the program counter moved past them."""

    def push(computation: Any) -> None:
        code = computation.code
        pc = code.program_counter
        raw = code._raw_code_bytes[pc:pc + size]
        code.program_counter = pc + size
        values = computation._stack.values
        if len(values) > 1023:
            raise FullStack("Stack limit reached")
        values.append(raw if len(raw) == size else raw.ljust(size, b"\x00"))

    push.__name__ = push.__qualname__ = f"push{size}"
    return push


_PUSHES = [_push_of(size) for size in range(1, 33)]


class SimComputation(PragueComputation):
    """``PragueComputation`` with the code stream, stack and dispatch loop above."""

    # py-evm's properties returning the stack's bound methods, shadowed by instance attributes
    stack_pop_ints = stack_pop_bytes = stack_pop_any = stack_pop1_int = None  # type: ignore[assignment]
    stack_pop1_bytes = stack_pop1_any = stack_push_int = stack_push_bytes = None  # type: ignore[assignment]
    _table: list[Any] | None = None  # per class: opcode -> (gas, logic, mnemonic) or the opcode object

    def __init__(self, state: Any, message: Any, transaction_context: Any) -> None:
        super().__init__(state, message, transaction_context)
        self.code = SimCodeStream(message.code)
        stack = self._stack = SimStack()
        self.stack_pop_ints = stack.pop_ints
        self.stack_pop_bytes = stack.pop_bytes
        self.stack_pop_any = stack.pop_any
        self.stack_pop1_int = stack.pop1_int
        self.stack_pop1_bytes = stack.pop1_bytes
        self.stack_pop1_any = stack.pop1_any
        self.stack_push_int = stack.push_int
        self.stack_push_bytes = stack.push_bytes

    def extend_memory(self, start_position: int, size: int) -> None:
        """py-evm's, but for the two cases where it does nothing (the same checks first): an empty
        range, or one inside memory already (memory's length is a multiple of 32, so it costs no
        gas and extends nothing); most MLOADs and MSTOREs after the first."""
        if start_position.__class__ is int and size.__class__ is int and 0 <= start_position <= UINT_256_MAX:
            if size == 0:
                return
            if 0 < size and start_position + size <= len(self._memory._bytes):
                return
        super().extend_memory(start_position, size)

    @classmethod
    def _dispatch_table(cls) -> list[Any]:
        table = cls.__dict__.get("_table")
        if table is None:
            table = []
            for op in range(256):
                fn = cls.opcodes.get(op)
                if fn is None:
                    table.append(InvalidOpcode(op))
                elif type(fn) is _FastOpcode:
                    logic = fn.logic_fn
                    if _PUSH1 <= op <= _PUSH32 and logic is getattr(stack_logic, f"push{op - _PUSH1 + 1}"):
                        logic = _PUSHES[op - _PUSH1]
                    table.append((fn.gas_cost, logic, fn.mnemonic))
                else:
                    table.append(fn)
            cls._table = table
        return table

    @classmethod
    def apply_computation(cls, state: Any, message: Any, transaction_context: Any,
                          parent_computation: Any = None) -> Any:
        if cls.logger.show_debug2 or GasMeter.logger.show_debug2:
            return super().apply_computation(state, message, transaction_context, parent_computation)
        table = cls._dispatch_table()
        # from here as py-evm's BaseComputation.apply_computation (0.12.1b1), but for the loop
        with cls(state, message, transaction_context) as computation:
            if computation.is_origin_computation:
                computation.contracts_created = []
                if message.is_create:
                    cls.consume_initcode_gas_cost(computation)
            if parent_computation is not None:
                computation.contracts_created = parent_computation.contracts_created
            if message.is_create:
                computation.contracts_created.append(message.storage_address)
            precompile = computation.precompiles.get(message.code_address, _NO_RESULT)
            if precompile is not _NO_RESULT:
                if not message.is_delegation:
                    precompile(computation)
                return computation

            code = computation.code
            raw = code._raw_code_bytes
            n = len(raw)
            meter = computation._gas_meter
            try:
                while True:
                    pc = code.program_counter
                    if pc < n:
                        code.program_counter = pc + 1
                        entry = table[raw[pc]]
                    else:
                        entry = table[0]  # past the end: STOP
                    if entry.__class__ is tuple:
                        cost, logic, mnemonic = entry
                        if cost:
                            remaining = meter.gas_remaining
                            if cost > remaining:
                                raise OutOfGas(f"Out of gas: Needed {cost} - Remaining {remaining} "
                                               f"- Reason: {mnemonic}")
                            meter.gas_remaining = remaining - cost
                        logic(computation)
                    else:
                        entry(computation=computation)
            except Halt:
                pass
        return computation


class SimState(PragueState):
    computation_class = SimComputation


class SimPragueVM(PragueVM):
    """``PragueVM`` executing with ``SimComputation``."""

    _state_class = SimState
