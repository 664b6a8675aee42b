"""Parse an untrusted OpenQASM 2 or 3 program into a qiskit circuit, within limits.

A circuit is untrusted input, and the parsers are not built for hostile input (design.md,
"Circuits are untrusted input"): `qreg q[10000000];` costs qiskit seconds and gigabytes, nested
gate definitions expand to 5.5e11 operations, `include` reads server files, and the OpenQASM 3
importer copies every gate definition into every call site and parses about 3,000 statements a
second. So the work is done in this order, each step bounding the next one's cost:

1. size of the text, before anything else;
2. a cheap scan of the source (comments blanked out): the header, the includes, the register
   sizes, and an upper bound on the instructions the parser would build;
3. the parser itself, every failure answered as `InvalidQasm` with line and column;
4. the parsed circuit: qubits, clbits, operations expanded through gate definitions and loops
   (memoised, so counting is cheap however large the expansion), then depth.

qiskit is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from shared.circuits.bitorder import normalize_registers
from shared.circuits.limits import CircuitLimits
from shared.circuits.shape import Shape, shape_of
from shared.errors import BadRequest, InvalidQasm, LimitExceeded, PayloadTooLarge, one_line

# The only file each version may include: the parsers know them without reading a file.
_ALLOWED_INCLUDES = {2: "qelib1.inc", 3: "stdgates.inc"}

# Gate definitions (and control flow) nested deeper than this are refused: no real circuit needs
# it, and it keeps every recursion here and in qiskit far from Python's recursion limit.
MAX_NESTING = 64

# Expressions: operators in one statement (each one a level of the parse tree, so this bounds
# the expression's depth and length at once: 250 KB of `-` took the OpenQASM 3 parser 111 s and
# 1.5 GB), items in one parenthesised list (a gate's parameters: 12,000 of them took 117 s, the
# parse growing with their square), and the characters of one name or number.
MAX_EXPRESSION_OPERATORS = 64
MAX_PARAMETERS = 64
MAX_TOKEN_CHARACTERS = 256
# The OpenQASM 3 parser reads about 15,000 tokens a second (pure Python, holding the GIL a
# slice at a time): a larger program would hold a request thread for seconds. OpenQASM 2's
# parser is compiled and reads 250 KB in under a second, so it has no such bound.
MAX_QASM3_TOKENS = 20_000

# Any size at or above this is "absurd": compared, never computed with, so that
# `qreg q[99999999999999999999];` costs nothing.
_HUGE = 10**15

# Operations that count as one: qiskit's standard gates (read lazily), and these instructions
# Aer runs as they are (by class name).
_EXTRA_NAMES = {
    "Barrier": "barrier",
    "Measure": "measure",
    "Reset": "reset",
    "Delay": "delay",
    "UnitaryGate": "unitary",
    "Store": "store",
    "BreakLoopOp": "break_loop",
    "ContinueLoopOp": "continue_loop",
}

# Clifford operations the stabilizer method runs natively (all in its target). A deliberately
# small, parameter-free set: a circuit using anything else goes to statevector or MPS.
CLIFFORD_OPERATIONS = frozenset(
    {
        "h", "s", "sdg", "x", "y", "z", "cx", "cy", "cz", "swap", "id", "sx", "sxdg", "ecr",
        "measure", "reset", "barrier", "delay", "break_loop", "continue_loop",
    }
)  # fmt: skip
# Control flow the stabilizer target accepts; Clifford when its blocks are.
_CLIFFORD_CONTROL_FLOW = frozenset({"if_else", "for_loop", "switch_case"})


@dataclass(frozen=True)
class ParsedCircuit:
    """A circuit that passed every limit, and what the rest of the app needs to know about it.

    `circuit` is a `qiskit.QuantumCircuit`; treat it as read-only (it may be shared, e.g. by the
    simulator's transpile cache, which is keyed by `qasm_hash`).
    """

    circuit: Any
    qasm_hash: str  # sha256 hex of the source text (utf-8)
    qasm_version: int  # 2 or 3
    num_qubits: int
    num_clbits: int
    operations: int  # expanded through gate definitions and loops
    depth: int
    is_clifford: bool  # every expanded operation is in CLIFFORD_OPERATIONS
    # Nothing but measurements follows the first measurement, and no reset or control flow: a
    # simulator can draw every shot from one run (else each shot is a run of its own).
    final_measurements: bool = True

    @cached_property
    def shape(self) -> Shape:
        """Operations by kind and how entangled the circuit can get (read on first use)."""
        return shape_of(self.circuit, self.operations)


@dataclass(frozen=True)
class Source:
    """A program that passed the checks made before parsing (`check_source`)."""

    text: str  # line endings made "\n"
    data: bytes  # the utf-8 bytes as received
    version: int  # 2 or 3
    tokens: int  # OpenQASM 3 only (0 for OpenQASM 2): what the parser will read


def check_source(qasm: str, limits: CircuitLimits) -> Source:
    """The checks `parse_circuit` makes before parsing, which cost a pass or two over the text:
    size, header, includes, register sizes, expressions, an upper bound on the instructions.
    Raises what `parse_circuit` raises for those. A request with many circuits checks them all
    with this before parsing any."""
    data = _check_size(qasm, limits.max_qasm_bytes)
    # One line ending for the checks and the parsers alike: OpenQASM 3's lexer ends a comment at
    # a lone CR, which the checks below would otherwise read as part of the comment.
    qasm = qasm.replace("\r\n", "\n").replace("\r", "\n")
    if not qasm.strip():
        raise InvalidQasm("The circuit is empty")
    version = _read_header(qasm)
    code = _blank_comments(qasm, version)
    _check_includes(code, version)
    tokens = _scan_source(code, version, limits)
    return Source(text=qasm, data=data, version=version, tokens=tokens)


def parse_circuit(qasm: str, limits: CircuitLimits) -> ParsedCircuit:
    """Parse `qasm` (OpenQASM 2.0 or 3) and check it against `limits`.

    Raises (all `ApiError`s, none carrying a traceback or echoing the source):
    - `PayloadTooLarge` (413, error_code CIRCUIT_TOO_LARGE): more than `max_qasm_bytes` bytes;
      checked before anything else is read;
    - `InvalidQasm` (400, INVALID_QASM): empty, no `OPENQASM 2.0;`/`OPENQASM 3;` header, not
      UTF-8, a syntax or semantic error ("line L, column C: ..." whenever the parser says
      where), a construct refused as unsafe (register sizes that are not integer literals, gate
      modifiers on user-defined gates, `pow` with `ctrl`, calibration blocks, while loops),
      or past a bound on what the parser would read: a statement of more than
      `MAX_EXPRESSION_OPERATORS` operators, a list of more than `MAX_PARAMETERS` items, a name
      or number of more than `MAX_TOKEN_CHARACTERS` characters;
    - `BadRequest` (400, INCLUDE_NOT_ALLOWED): an include other than `qelib1.inc` (v2) or
      `stdgates.inc` (v3);
    - `LimitExceeded` (400) with error_code QUBIT_LIMIT_EXCEEDED, CLBIT_LIMIT_EXCEEDED,
      OPERATION_LIMIT_EXCEEDED, DEPTH_LIMIT_EXCEEDED or CIRCUIT_TOO_COMPLEX (an OpenQASM 3
      program of more than `MAX_QASM3_TOKENS` tokens). Qubits and clbits are checked on the
      sizes written in the source before parsing and on the circuit after; operations on an
      upper bound before parsing and on the exact expanded count after.
    """
    return parse_source(check_source(qasm, limits), limits)


def parse_source(source: Source, limits: CircuitLimits) -> ParsedCircuit:
    """`parse_circuit` of a program `check_source` passed (with the same `limits`)."""
    circuit = _parse(source.text, source.version)

    if circuit.num_qubits > limits.max_qubits:
        raise _qubit_limit(circuit.num_qubits, limits.max_qubits)
    if circuit.num_clbits > limits.max_clbits:
        raise _clbit_limit(circuit.num_clbits, limits.max_clbits)
    operations, is_clifford = count_operations(circuit, limits.max_operations)
    if operations > limits.max_operations:
        raise _operation_limit(limits.max_operations)
    # Depth walks the whole circuit: only once the operation count is known to be bounded.
    depth = int(circuit.depth())
    if depth > limits.max_depth:
        raise LimitExceeded(
            f"The circuit has depth {depth}; the limit is {limits.max_depth}",
            error_code="DEPTH_LIMIT_EXCEEDED",
        )

    circuit = normalize_registers(circuit)
    return ParsedCircuit(
        circuit=circuit,
        qasm_hash=hashlib.sha256(source.data).hexdigest(),
        qasm_version=source.version,
        num_qubits=int(circuit.num_qubits),
        num_clbits=int(circuit.num_clbits),
        operations=operations,
        depth=depth,
        is_clifford=is_clifford,
        final_measurements=measures_at_the_end(circuit),
    )


# --- 1. size -------------------------------------------------------------------------------


def _check_size(qasm: str, max_bytes: int) -> bytes:
    """The utf-8 bytes of `qasm`; `PayloadTooLarge` when more than `max_bytes`."""
    too_large = PayloadTooLarge(
        f"The circuit is larger than the limit of {max_bytes} bytes",
        error_code="CIRCUIT_TOO_LARGE",
    )
    # Every character is at least one byte: a text this long is too large without encoding it.
    if len(qasm) > max_bytes:
        raise too_large
    try:
        data = qasm.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        raise InvalidQasm("The circuit is not valid UTF-8 text") from None
    if len(data) > max_bytes:
        raise too_large
    return data


# --- 2. scan of the source -----------------------------------------------------------------

_IDENT = r"[^\W\d]\w*"
_LEADING_TRIVIA = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_HEADER = re.compile(r"OPENQASM\s+(\d+)(?:\.(\d+))?\s*;")

# Strings are matched exactly as the lexers do (no line break inside) so that the scan and the
# parser agree on where comments are. Strings and everything else are kept; only comments are
# blanked, so the scan sees at least everything the parser sees. OpenQASM 2 (qiskit.qasm2) has no
# block comments: a `/*` there is a syntax error, so it is left for the parser to refuse.
_TRIVIA_V2 = re.compile(r"\"[^\"\r\n]*\"|'[^'\r\n]*'|(?P<comment>//[^\n]*)")
# OpenQASM 3 lexes the rest of a line after `pragma` or an annotation `@name` (no space after
# the `@`; `ctrl @ x` is a modifier) as opaque text: keep that text verbatim, since a `/*` there
# opens no comment for the parser.
_TRIVIA_V3 = re.compile(
    r"\"[^\"\r\n]*\"|'[^'\r\n]*'|(?:@(?=[^\W\d])|\bpragma\b)[^\n]*"
    r"|(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))",
    re.DOTALL,
)
_INCLUDE = re.compile(r"\binclude\b")
_INCLUDE_TARGET = re.compile(r"\s*(?:\"([^\"\r\n]*)\"|'([^'\r\n]*)')\s*;")
# Calibration blocks are opaque to the OpenQASM 3 lexer (any text, balanced braces), which the
# scan cannot follow; the importer does not support them either.
_CALIBRATION = re.compile(r"\b(?:cal|defcal|defcalgrammar)\b")
_REGISTER_KEYWORD = re.compile(r"\b(qreg|creg|qubit|bit)\b")
_OLD_STYLE_REST = re.compile(rf"\s*({_IDENT})\s*(?:\[([^\]]*)\])?")
_NEW_STYLE_REST = re.compile(rf"\s*(?:\[([^\]]*)\])?\s*({_IDENT})?")
_PHYSICAL_QUBIT = re.compile(r"\$(\d+)")
_LET = re.compile(rf"\blet\s+({_IDENT})")
_GATE_DEFINITION = re.compile(rf"\bgate\s+({_IDENT})")
_IDENTIFIER = re.compile(_IDENT)
_STATEMENT_END = re.compile(r"[;{}]")
_BRACKET = re.compile(r"[()\[\]{}]")
_INTEGER = {2: re.compile(r"\d+"), 3: re.compile(r"\d+(?:_\d+)*")}
_MODIFIER_POW = re.compile(r"\bpow\b")
_MODIFIER_CTRL = re.compile(r"\b(?:ctrl|negctrl)\b")
# Statements that declare rather than build instructions: they cost the parser nothing per qubit.
_DECLARATION_WORDS = frozenset(
    {"OPENQASM", "include", "qreg", "creg", "qubit", "bit", "let", "input", "output", "const",
     "opaque", "gate"}
)  # fmt: skip


def _position(text: str, offset: int) -> tuple[int, int]:
    """(line, column) of `offset`: lines from 1, columns from 0, as the parsers report them."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1)
    return line, column


def _at(text: str, offset: int, message: str) -> str:
    line, column = _position(text, offset)
    return f"line {line}, column {column}: {message}"


def _read_header(qasm: str) -> int:
    """The OpenQASM major version (2 or 3) of the header after leading comments and blanks."""
    start = _LEADING_TRIVIA.match(qasm)
    offset = start.end() if start else 0
    header = _HEADER.match(qasm, offset)
    if header is None:
        raise InvalidQasm(
            _at(qasm, offset, "expected the header 'OPENQASM 2.0;' or 'OPENQASM 3.0;'")
        )
    major, minor = header.group(1), header.group(2)
    if major == "2" and minor in (None, "0"):
        return 2
    if major == "3":
        return 3
    raise InvalidQasm(
        _at(qasm, offset, "unsupported OpenQASM version; use 'OPENQASM 2.0;' or 'OPENQASM 3.0;'")
    )


def _blank_comments(qasm: str, version: int) -> str:
    """`qasm` with every comment replaced by spaces (line breaks kept, so offsets still hold)."""

    def blank(match: re.Match[str]) -> str:
        text = match.group()
        if match.group("comment") is None:
            return text
        return re.sub(r"[^\n]", " ", text)

    return (_TRIVIA_V2 if version == 2 else _TRIVIA_V3).sub(blank, qasm)


def _check_includes(code: str, version: int) -> None:
    """Refuse any include but the version's standard library (a parser would read the file)."""
    allowed = _ALLOWED_INCLUDES[version]
    for include in _INCLUDE.finditer(code):
        target = _INCLUDE_TARGET.match(code, include.end())
        name = None if target is None else (target.group(1) or target.group(2))
        if name != allowed:
            raise BadRequest(
                _at(code, include.start(), f'only include "{allowed}" is allowed'),
                error_code="INCLUDE_NOT_ALLOWED",
            )


@dataclass
class _Scan:
    """What the source declares, read without parsing it."""

    qubits: int = 0
    clbits: int = 0
    quantum_registers: dict[str, int] = field(default_factory=dict)


def _scan_source(code: str, version: int, limits: CircuitLimits) -> int:
    """Check what `code` (comments blanked) declares against `limits`, before any parsing; the
    program's OpenQASM 3 tokens (0 for OpenQASM 2)."""
    if version == 3:
        calibration = _CALIBRATION.search(code)
        if calibration:
            raise InvalidQasm(
                _at(code, calibration.start(), "calibration blocks are not supported")
            )
    _check_nesting(code)
    tokens = _check_expressions(code, version)
    scan = _scan_registers(code, version)
    if scan.qubits > limits.max_qubits:
        raise _qubit_limit(scan.qubits, limits.max_qubits)
    if scan.clbits > limits.max_clbits:
        raise _clbit_limit(scan.clbits, limits.max_clbits)
    if _instruction_bound(code, version, scan, limits.max_operations) > limits.max_operations:
        raise _operation_limit(limits.max_operations)
    return tokens


def _check_nesting(code: str) -> None:
    """Refuse brackets nested more than `MAX_NESTING` deep: the OpenQASM 3 parser's time grows
    with the square of the nesting (20,000 nested parentheses, 40 KB, take it 15 s), and no real
    circuit nests this deep."""
    depth = 0
    for bracket in _BRACKET.finditer(code):
        if bracket.group() in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise InvalidQasm(
                    _at(code, bracket.start(), f"brackets nest more than {MAX_NESTING} deep")
                )
        else:
            depth = max(depth - 1, 0)


_OPERATOR = re.compile(r"[-+*/%^~!&|<>=]")
_LIST_MARK = re.compile(r"[(),]")
_LONG_TOKEN = re.compile(rf"[\w.]{{{MAX_TOKEN_CHARACTERS + 1},}}")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _check_expressions(code: str, version: int) -> int:
    """Bound what the parser would build from each statement (the module's constants say why):
    operators per statement, items per parenthesised list, characters per name or number, and
    for OpenQASM 3 the tokens of the whole program, which it returns (0 for OpenQASM 2). One
    pass over the text each."""
    long_token = _LONG_TOKEN.search(code)
    if long_token:
        raise InvalidQasm(
            _at(
                code,
                long_token.start(),
                f"a name or number is longer than {MAX_TOKEN_CHARACTERS} characters",
            )
        )
    for offset, statement in _statements(code, 0):
        operators = _OPERATOR.findall(statement)
        if len(operators) > MAX_EXPRESSION_OPERATORS:
            raise InvalidQasm(
                _at(
                    code,
                    offset,
                    f"the statement has more than {MAX_EXPRESSION_OPERATORS} operators",
                )
            )
        depth, items = 0, [0]
        for mark in _LIST_MARK.finditer(statement):
            if mark.group() == "(":
                depth += 1
                items.append(1)
            elif mark.group() == ")":
                depth = max(depth - 1, 0)
                if len(items) > 1:
                    items.pop()
            elif depth:
                items[-1] += 1
                if items[-1] > MAX_PARAMETERS:
                    raise InvalidQasm(
                        _at(
                            code,
                            offset + mark.start(),
                            f"a parenthesised list has more than {MAX_PARAMETERS} items",
                        )
                    )
    if version == 2:
        return 0
    tokens = sum(1 for _ in _TOKEN.finditer(code))
    check_qasm3_tokens(tokens)
    return tokens


def check_qasm3_tokens(tokens: int, what: str = "The program has") -> None:
    """`LimitExceeded` (CIRCUIT_TOO_COMPLEX) past `MAX_QASM3_TOKENS` tokens to parse."""
    if tokens > MAX_QASM3_TOKENS:
        raise LimitExceeded(
            f"{what} {tokens} OpenQASM 3 tokens; the limit is {MAX_QASM3_TOKENS} (OpenQASM 2.0"
            " has no such limit)",
            error_code="CIRCUIT_TOO_COMPLEX",
        )


def _register_size(code: str, designator: str | None, offset: int, version: int) -> int:
    """The size written between `[` and `]` (1 without one), capped at `_HUGE`."""
    if designator is None:
        return 1
    literal = designator.strip()
    if not _INTEGER[version].fullmatch(literal):
        raise InvalidQasm(_at(code, offset, "register sizes must be integer literals"))
    digits = literal.replace("_", "").lstrip("0")
    # Never convert an absurd literal (int() of a long digit string is itself costly).
    return _HUGE if len(digits) >= 16 else int(digits or "0")


def _scan_registers(code: str, version: int) -> _Scan:
    """Sum the register sizes written in `code`: `qreg`/`creg` (both versions), `qubit`/`bit`
    with or without a size, and the physical qubits `$n` (v3). Every occurrence of the keywords
    counts, including subroutine arguments: counting too much is safe, too little is not."""
    scan = _Scan()
    for keyword in _REGISTER_KEYWORD.finditer(code):
        word = keyword.group(1)
        if word in ("qreg", "creg"):
            rest = _OLD_STYLE_REST.match(code, keyword.end())
            if rest is None:
                continue  # not a declaration the parser would accept either
            name, designator = rest.group(1), rest.group(2)
        elif version == 3:
            rest = _NEW_STYLE_REST.match(code, keyword.end())
            designator = rest.group(1) if rest else None
            name = rest.group(2) if rest else None
            if designator is None and name is None:
                continue  # e.g. a cast `bit(x)`: declares nothing
        else:
            continue  # `qubit` and `bit` are plain identifiers in OpenQASM 2
        size = _register_size(code, designator, keyword.end(), version)
        if word in ("qreg", "qubit"):
            scan.qubits += size
            if name is not None:
                scan.quantum_registers[name] = max(size, scan.quantum_registers.get(name, 0))
        else:
            scan.clbits += size
    if version == 3:
        physical = [m.group(1).lstrip("0") for m in _PHYSICAL_QUBIT.finditer(code)]
        if physical:
            # The importer makes a circuit of (highest index + 1) qubits.
            highest = max((_HUGE if len(d) >= 16 else int(d or "0")) for d in physical)
            scan.qubits += highest + 1
        for alias in _LET.finditer(code):
            # An alias names (part of) a register: treat it as one as large as the largest.
            scan.quantum_registers.setdefault(alias.group(1), 0)
    return scan


@dataclass(frozen=True)
class _GateDefinition:
    name: str
    start: int  # offset of `gate`
    end: int  # offset after the closing brace
    body_start: int
    body: str


def _gate_definitions(code: str, version: int) -> list[_GateDefinition]:
    """The `gate name ... { body }` definitions in `code`, in source order."""
    definitions: list[_GateDefinition] = []
    position = 0
    while True:
        match = _GATE_DEFINITION.search(code, position)
        if match is None:
            return definitions
        opening = code.find("{", match.end())
        terminator = _STATEMENT_END.search(code, match.end())
        if opening < 0 or terminator is None or terminator.start() != opening:
            position = match.end()  # malformed: the parser will say where
            continue
        closing = code.find("}", opening + 1)
        if closing < 0:
            closing = len(code)
        nested = code.find("{", opening + 1, closing)
        if nested >= 0 and version == 3:
            raise InvalidQasm(_at(code, nested, "blocks inside gate bodies are not supported"))
        definitions.append(
            _GateDefinition(
                name=match.group(1),
                start=match.start(),
                end=min(closing + 1, len(code)),
                body_start=opening + 1,
                body=code[opening + 1 : closing],
            )
        )
        position = closing + 1


def _check_modifiers(code: str, offset: int, statement: str, gates: dict[str, int]) -> None:
    """Refuse the OpenQASM 3 modifiers that make the importer compute matrices or copy whole
    definitions: any modifier on a user-defined gate, and `pow` together with `ctrl`/`negctrl`
    (`ctrl(8) @ pow(0.5) @ x` alone runs for minutes)."""
    if "@" not in statement:
        return
    if _MODIFIER_POW.search(statement) and _MODIFIER_CTRL.search(statement):
        raise InvalidQasm(_at(code, offset, "'pow' cannot be combined with 'ctrl' or 'negctrl'"))
    for identifier in _IDENTIFIER.finditer(statement):
        if identifier.group() in gates and statement[: identifier.start()].rstrip().endswith("@"):
            raise InvalidQasm(
                _at(
                    code,
                    offset + identifier.start(),
                    "gate modifiers (inv, pow, ctrl, negctrl) apply only to standard gates",
                )
            )


def _statements(text: str, base: int) -> Iterator[tuple[int, str]]:
    """The non-blank pieces of `text` between `;`, `{` and `}`, with their offsets."""
    start = 0
    for end in [*_STATEMENT_END.finditer(text), None]:
        stop = len(text) if end is None else end.start()
        piece = text[start:stop]
        statement = piece.lstrip()
        if statement:
            yield base + start + len(piece) - len(statement), statement
        if end is not None:
            start = end.end()


def _instruction_bound(code: str, version: int, scan: _Scan, budget: int) -> int:
    """An upper bound on the instructions the parser would build; stops once over `budget`.

    Each statement outside gate bodies counts once, or once per qubit of the largest register
    when it names a whole register or a slice (broadcast: `h q;`). In OpenQASM 3 a call of a
    user-defined gate counts the gate's expanded size, and each definition its own size, because
    the importer copies the expanded definition into every call (OpenQASM 2 defines gates lazily:
    their expansion is counted exactly after parsing).
    """
    widest = max(scan.quantum_registers.values(), default=1)
    definitions = _gate_definitions(code, version)
    gates: dict[str, int] = {}  # expanded size of each user-defined gate (v3)
    nesting: dict[str, int] = {}
    total = 0
    if version == 3:
        for definition in definitions:
            size, depth = 0, 1
            for offset, statement in _statements(definition.body, definition.body_start):
                _check_modifiers(code, offset, statement, gates)
                calls = [i.group() for i in _IDENTIFIER.finditer(statement) if i.group() in gates]
                size += sum(gates[c] for c in calls) if calls else 1
                depth = max([depth, *(nesting[c] + 1 for c in calls)])
                size = min(size, _HUGE)
            if depth > MAX_NESTING:
                raise LimitExceeded(
                    _at(
                        code,
                        definition.start,
                        f"gate definitions nest more than {MAX_NESTING} deep",
                    ),
                    error_code="OPERATION_LIMIT_EXCEEDED",
                )
            gates[definition.name] = size
            nesting[definition.name] = depth
            total += size
            if total > budget:
                return total
    # The rest of the program, gate bodies blanked out.
    pieces: list[str] = []
    position = 0
    for definition in definitions:
        pieces.append(code[position : definition.start])
        pieces.append(re.sub(r"[^\n]", " ", code[definition.start : definition.end]))
        position = definition.end
    pieces.append(code[position:])
    program = "".join(pieces)
    for offset, statement in _statements(program, 0):
        identifiers = list(_IDENTIFIER.finditer(statement))
        if not identifiers or identifiers[0].group() in _DECLARATION_WORDS:
            continue
        if version == 3:
            _check_modifiers(code, offset, statement, gates)
        sizes = [gates[i.group()] for i in identifiers if i.group() in gates]
        cost = sum(sizes) if sizes else 1
        total += cost * (widest if _broadcasts(statement, identifiers, scan) else 1)
        if total > budget:
            return total
    return total


def _broadcasts(statement: str, identifiers: list[re.Match[str]], scan: _Scan) -> bool:
    """True when `statement` may apply to many qubits: a whole register or a slice."""
    for identifier in identifiers:
        if identifier.group() in scan.quantum_registers:
            following = statement[identifier.end() :].lstrip()
            if not following.startswith("["):
                return True
            index = following[1 : following.find("]")] if "]" in following else following
            if any(mark in index for mark in ":,{"):
                return True
    return False


# --- 3. parsing ----------------------------------------------------------------------------

_QASM2_LOCATION = re.compile(r"^(?:<input>:)?(\d+),(\d+):\s*(.*)$", re.DOTALL)
_QASM3_IMPORTER_LOCATION = re.compile(r"^(\d+),(\d+):\s*(.*)$", re.DOTALL)
_QASM3_PARSER_LOCATION = re.compile(r"^L(\d+):C(\d+):\s*(.*)$", re.DOTALL)
_MAX_MESSAGE = 200


def _clean(message: str) -> str:
    """One line, bounded: parser messages may quote the source."""
    return one_line(message, _MAX_MESSAGE)


_import_lock = threading.Lock()
_imported = False


def _import_parsers() -> None:
    """Import qiskit's parsers once, in one thread. Threads that import qiskit for the first
    time together see its modules half-initialised (a circular import inside qiskit), and a
    valid circuit then fails to parse: a burst of requests at a cold start did exactly that."""
    global _imported
    if _imported:
        return
    with _import_lock:
        import qiskit.qasm2
        import qiskit.qasm3  # noqa: F401

        _imported = True


def _located(match: re.Match[str] | None, fallback: str) -> str:
    if match is None:
        return _clean(fallback) or "the circuit could not be parsed"
    line, column, message = match.groups()
    return f"line {line}, column {column}: {_clean(message)}"


def _parse(qasm: str, version: int) -> Any:
    """The qiskit circuit of `qasm`; every failure is an `InvalidQasm`."""
    _import_parsers()
    try:
        if version == 2:
            return _parse_qasm2(qasm)
        return _parse_qasm3(qasm)
    except InvalidQasm:
        raise
    except RecursionError:
        raise InvalidQasm("The circuit is nested too deeply to parse") from None
    except MemoryError:
        raise InvalidQasm("The circuit is too large to parse") from None
    except Exception as exc:  # a parser bug or an unforeseen input: still the client's 400
        from qiskit.exceptions import QiskitError

        if isinstance(exc, QiskitError) and exc.message:
            raise InvalidQasm(f"The circuit is invalid: {_clean(exc.message)}") from None
        logging.getLogger(__name__).warning("parser failed", exc_info=True)
        raise InvalidQasm("The circuit could not be parsed") from None


@cache
def _qasm2_instructions() -> tuple[Any, ...]:
    """qelib1's gates as qiskit's legacy importer maps them, and every other standard gate
    qiskit's exporter writes a definition for (`gate ecr ...`), mapped to qiskit's own class:
    the simulator runs gates by name, so a definition under a built-in name is that gate."""
    import qiskit.qasm2
    from qiskit.circuit import Gate
    from qiskit.circuit.library import get_standard_gate_name_mapping

    legacy = qiskit.qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    taken = {instruction.name for instruction in legacy}
    more = tuple(
        qiskit.qasm2.CustomInstruction(name, len(op.params), op.num_qubits, type(op))
        for name, op in get_standard_gate_name_mapping().items()
        if isinstance(op, Gate) and name not in taken and name != "global_phase"
    )
    return tuple(legacy) + more


def _parse_qasm2(qasm: str) -> Any:
    import qiskit.qasm2

    try:
        return qiskit.qasm2.loads(
            qasm,
            # Never read a file: qelib1.inc is built in, and nothing else is allowed.
            include_path=(),
            # sx, swap, p, cp, u ... as qiskit's qelib1.inc-based exporters write them.
            custom_instructions=_qasm2_instructions(),
        )
    except qiskit.qasm2.QASM2ParseError as exc:
        raise InvalidQasm(_located(_QASM2_LOCATION.match(exc.message), exc.message)) from None


@cache
def _quiet_antlr() -> None:
    """ANTLR prints each syntax error, with a fragment of the user's source, to stderr; the
    error we answer already carries it, and user source does not belong in the host's log."""
    from antlr4.error.ErrorListener import ConsoleErrorListener

    def ignore(*args: Any) -> None:
        return None

    ConsoleErrorListener.syntaxError = ignore


def _parse_qasm3(qasm: str) -> Any:
    import qiskit.qasm3
    from openqasm3.parser import QASM3ParsingError

    _quiet_antlr()
    try:
        return qiskit.qasm3.loads(qasm)
    except qiskit.qasm3.QASM3ImporterError as exc:
        message = exc.message
        raise InvalidQasm(_located(_QASM3_IMPORTER_LOCATION.match(message), message)) from None
    except QASM3ParsingError as exc:
        raise InvalidQasm(_qasm3_syntax_detail(exc)) from None


def _qasm3_syntax_detail(exc: Exception) -> str:
    """The detail of an OpenQASM 3 syntax error: "L5:C0: ..." in its message, or (when the
    message is empty) the ANTLR RecognitionException under its cause."""
    message = str(exc)
    if message:
        return _located(_QASM3_PARSER_LOCATION.match(message), message)
    cause = exc.__cause__
    candidates: list[Any] = [cause, *(getattr(cause, "args", ()) or ())]
    for candidate in candidates:
        token = getattr(candidate, "offendingToken", None)
        if token is None or getattr(token, "line", None) is None:
            continue
        if getattr(token, "type", None) == -1:  # ANTLR's EOF
            found = "the end of the program"
        else:
            found = repr(_clean(str(token.text))[:40])
        expected = _expected_tokens(candidate)
        detail = f"expected {expected} but found {found}" if expected else f"unexpected {found}"
        return f"line {token.line}, column {token.column}: {detail}"
    return "syntax error"


def _expected_tokens(recognition: Any) -> str | None:
    """The tokens the parser expected, when ANTLR knows them and they are few."""
    try:
        recognizer = recognition.recognizer
        expected = recognition.getExpectedTokens()
        if expected is None:
            return None
        text = str(expected.toString(recognizer.literalNames, recognizer.symbolicNames))
    except Exception:  # best effort: the location is what matters
        return None
    return text if 0 < len(text) <= 60 else None


# --- 4. the parsed circuit -----------------------------------------------------------------


@cache
@cache
def _atomic_operations() -> dict[str, type]:
    """The operations that count as one, by name, with the class each name must have: a
    program's own gate that borrows a built-in name is not one of them (Aer runs by name)."""
    from qiskit.circuit import (
        Barrier,
        BreakLoopOp,
        ContinueLoopOp,
        Delay,
        Measure,
        Reset,
        Store,
    )
    from qiskit.circuit.library import UnitaryGate, get_standard_gate_name_mapping

    atomic: dict[str, type] = {
        name: op.base_class for name, op in get_standard_gate_name_mapping().items()
    }
    extras = (Barrier, Measure, Reset, Delay, UnitaryGate, Store, BreakLoopOp, ContinueLoopOp)
    for cls in extras:
        atomic[_EXTRA_NAMES[cls.__name__]] = cls
    return atomic


class _Counter:
    """Counts operations through definitions and control flow, memoised by operation name.

    A gate's structure does not depend on its parameters, so one count per (name, qubits,
    clbits) holds for every call: counting costs the size of the definitions, not of their
    expansion. Control-flow blocks differ per instruction, so they are walked each time.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.atomic = _atomic_operations()
        self.memo: dict[tuple[str, int, int], tuple[int, bool]] = {}

    def block(self, circuit: Any, depth: int) -> tuple[int, bool]:
        total, clifford = 0, True
        for instruction in circuit.data:
            count, op_clifford = self.operation(instruction.operation, depth)
            total += count
            clifford = clifford and op_clifford
            if total > self.budget:
                break  # over the limit: the exact figure does not matter
        return total, clifford

    def operation(self, op: Any, depth: int) -> tuple[int, bool]:
        from qiskit.circuit import ControlFlowOp

        name = str(op.name)
        if name in self.atomic:
            if getattr(op, "base_class", type(op)) is not self.atomic[name]:
                # Aer would run its own `name`, not the program's definition of it.
                raise InvalidQasm(
                    f"The program defines its own '{_clean(name)}', a name the simulator runs as"
                    " its built-in operation; give the gate another name"
                )
            return 1, name in CLIFFORD_OPERATIONS
        if depth >= MAX_NESTING:
            raise LimitExceeded(
                f"The circuit nests gate definitions or control flow more than {MAX_NESTING} deep",
                error_code="OPERATION_LIMIT_EXCEEDED",
            )
        if isinstance(op, ControlFlowOp):
            return self.control_flow(op, depth)
        key = (name, int(op.num_qubits), int(op.num_clbits))
        known = self.memo.get(key)
        if known is not None:
            return known
        try:
            definition = op.definition
        except Exception:  # a definition that cannot be built: Aer will say if it can run it
            definition = None
        result = (1, False) if definition is None else self.block(definition, depth + 1)
        self.memo[key] = result
        return result

    def control_flow(self, op: Any, depth: int) -> tuple[int, bool]:
        if op.name == "while_loop":
            # A loop on a measured bit may never end; nothing bounds what it would cost.
            raise InvalidQasm("while loops are not supported")
        total, clifford = 0, op.name in _CLIFFORD_CONTROL_FLOW
        for block in op.blocks:
            count, block_clifford = self.block(block, depth + 1)
            total += count
            clifford = clifford and block_clifford
            if total > self.budget:
                break
        if op.name == "for_loop":  # an empty body still costs Aer per iteration
            total = max(total, 1) * _iterations(op.params[0])
        return max(total, 1), clifford


def _iterations(indexset: Any) -> int:
    try:
        return len(indexset)
    except OverflowError:  # range(10**20)
        return _HUGE


# What may follow the first measurement for every shot to be drawn from one run.
_MEASUREMENT_TAIL = frozenset({"measure", "barrier"})


def measures_at_the_end(circuit: Any) -> bool:
    """True when every shot of `circuit` can be drawn from one run: no reset, no control flow,
    nothing but measurements after the first measurement (`ParsedCircuit.final_measurements`)."""
    measured = False
    for instruction in circuit.data:
        operation = instruction.operation
        name = operation.name
        if name == "reset" or getattr(operation, "blocks", ()):
            return False
        if name == "measure":
            measured = True
        elif measured and name not in _MEASUREMENT_TAIL:
            return False
    return True


def count_operations(circuit: Any, budget: int) -> tuple[int, bool]:
    """(operations, is_clifford) of `circuit`, expanded through gate definitions and loops.

    The count stops early once over `budget` (the returned figure is then only known to be
    larger). Raises `LimitExceeded` (OPERATION_LIMIT_EXCEEDED) for nesting deeper than
    `MAX_NESTING`, and `InvalidQasm` for a while loop.
    """
    return _Counter(budget).block(circuit, 0)


# --- errors --------------------------------------------------------------------------------


def _amount(value: int) -> str:
    return str(value) if value < _HUGE else "more than 10^15"


def _qubit_limit(qubits: int, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"The circuit uses {_amount(qubits)} qubits; the limit is {limit}",
        error_code="QUBIT_LIMIT_EXCEEDED",
    )


def _clbit_limit(clbits: int, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"The circuit uses {_amount(clbits)} classical bits; the limit is {limit}",
        error_code="CLBIT_LIMIT_EXCEEDED",
    )


def _operation_limit(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"The circuit expands to more than {limit} operations",
        error_code="OPERATION_LIMIT_EXCEEDED",
    )
