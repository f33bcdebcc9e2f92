"""Core (pure): the syntax tree of a rule, so that its checks read the tree and not the text.

The CEL library in use (``common-expression-language`` 0.10) compiles and evaluates but
exposes no syntax tree: a compiled program only lists the names of the variables and
functions it references. A count over the text is fooled by a ``//`` comment between
``.exists(`` and its variable, by a string holding the pattern, by escapes. So this module
lexes CEL as its specification does (comments, every string form and escape, numbers) and
parses the part of the language rules may use into a small tree; anything else (message
literals, ``.?`` optionals, a leading-dot name, reserved words) is a syntax error here.
:mod:`app.core.rule_check` also compares the names this tree holds with the names the library
reports for the compiled program: should the two parsers ever read a rule differently, the
rule is refused rather than trusted.

>>> tree = parse('[1, 2].exists( // a comment\\n x, x > amount)')
>>> [(m.name, m.var) for m in walk(tree) if isinstance(m, Macro)]
[('exists', 'x')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Comprehension macros (``has`` is a macro too, but not one a rule may use).
MACROS = {"all": (2,), "exists": (2,), "exists_one": (2,), "map": (2, 3), "filter": (2,)}
RESERVED = frozenset(
    {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "in",
     "let", "loop", "package", "namespace", "return", "var", "void", "while"}
)  # fmt: skip
_TOKEN = re.compile(
    r"(?P<skip>\s+|//[^\n]*)"
    r"|(?P<num>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d+|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+"
    r"|\d+[uU]?)"
    r"|(?P<str>(?:[rR][bB]|[bB][rR]|[rRbB])?(?:\"\"\"|'''|\"|'))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])"
)
_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "?": "?", '"': '"', "'": "'", "`": "`",
}  # fmt: skip
_BINARY = (
    ("||",),
    ("&&",),
    ("==", "!=", "<", "<=", ">", ">=", "in"),
    ("+", "-"),
    ("*", "/", "%"),
)


class ParseError(ValueError):
    """Not a rule this parser reads; ``kind`` is ``rule_syntax`` or ``too_deep``."""

    def __init__(self, kind: str, pos: int) -> None:
        super().__init__(f"{kind} at offset {pos}")
        self.kind, self.pos = kind, pos


@dataclass(frozen=True, slots=True)
class Lit:
    pos: int
    value: Any  # bool, int, float, str, bytes (as str) or None


@dataclass(frozen=True, slots=True)
class Ident:
    pos: int
    name: str


@dataclass(frozen=True, slots=True)
class Select:
    pos: int
    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Call:
    """A function (``size``), a method (``x.contains(y)``: ``target`` x) or an operator, named
    as the engine names it (``_+_``, ``!_``, ``@in``, ``_[_]``, ``_?_:_``)."""

    pos: int
    name: str
    args: tuple[Node, ...]
    target: Node | None = None


@dataclass(frozen=True, slots=True)
class ListLit:
    pos: int
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit:
    pos: int
    items: tuple[Node, ...]  # key, value, key, value, ...


@dataclass(frozen=True, slots=True)
class Macro:
    """``target.name(var, body...)``: a loop over ``target`` binding ``var``."""

    pos: int
    name: str
    target: Node
    var: str
    body: tuple[Node, ...]


Node = Lit | Ident | Select | Call | ListLit | MapLit | Macro


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args if node.target is None else (node.target, *node.args)
    if isinstance(node, ListLit | MapLit):
        return node.items
    if isinstance(node, Macro):
        return (node.target, *node.body)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node, parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def depth(node: Node) -> int:
    """The number of nodes on the longest path from ``node`` down (without recursion)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children(current))
    return deepest


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, name, op, end
    text: str
    pos: int
    value: Any = None


def tokens(source: str) -> list[Token]:
    """The tokens of ``source``: comments and white space dropped, string literals decoded."""
    out, i = [], 0
    while i < len(source):
        found = _TOKEN.match(source, i)
        if found is None:
            raise ParseError("rule_syntax", i)
        kind = found.lastgroup or ""
        if kind == "str":
            token, i = _string(source, i, found.group())
            out.append(token)
            continue
        if kind != "skip":
            value = _number(found.group()) if kind == "num" else None
            out.append(Token(kind, found.group(), i, value))
        i = found.end()
    out.append(Token("end", "", len(source)))
    return out


def _number(text: str) -> int | float:
    body = text.rstrip("uU")
    if body[:2] in ("0x", "0X"):
        return int(body, 16)
    if any(c in body for c in ".eE"):
        return float(body)
    return int(body)


def _string(source: str, start: int, opener: str) -> tuple[Token, int]:
    prefix = opener.rstrip("'\"").lower()
    quote = opener[len(prefix) :]
    raw, i, out = "r" in prefix, start + len(opener), []
    while not source.startswith(quote, i):
        if i >= len(source) or (len(quote) == 1 and source[i] in "\r\n"):
            raise ParseError("rule_syntax", start)
        if source[i] == "\\" and not raw:
            char, i = _escape(source, i)
            out.append(char)
        else:
            out.append(source[i])
            i += 1
    end = i + len(quote)
    return Token("str", source[start:end], start, "".join(out)), end


def _escape(source: str, i: int) -> tuple[str, int]:
    """The character of the escape at ``source[i]`` (a backslash) and the index after it."""
    code = source[i + 1 : i + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], i + 2
    width = {"x": 2, "X": 2, "u": 4, "U": 8}.get(code)
    digits = source[i + 2 : i + 2 + (width or 0)]
    if width and re.fullmatch(r"[0-9a-fA-F]+", digits) and len(digits) == width:
        value = int(digits, 16)
        if value <= 0x10FFFF:
            return chr(value), i + 2 + width
    octal = source[i + 1 : i + 4]
    if re.fullmatch(r"[0-3][0-7][0-7]", octal):
        return chr(int(octal, 8)), i + 4
    raise ParseError("rule_syntax", i)


def parse(source: str, max_depth: int = 12) -> Node:
    """The tree of ``source``, else :class:`ParseError` (the position, never the text)."""
    parser = _Parser(tokens(source), max_depth)
    tree = parser.expr()
    parser.expect("end")
    return tree


class _Parser:
    """Recursive descent over CEL's grammar, one method per precedence level; binary
    operators loop (left-associative), so only brackets and ``?:`` nest, and nesting deeper
    than ``max_depth`` is refused before Python's stack could be."""

    def __init__(self, toks: list[Token], max_depth: int) -> None:
        self.toks, self.at, self.depth, self.max_depth = toks, 0, 0, max_depth

    @property
    def tok(self) -> Token:
        return self.toks[self.at]

    def take(self, *texts: str) -> Token | None:
        tok = self.tok
        if tok.kind in ("op", "name") and tok.text in texts:
            self.at += 1
            return tok
        return None

    def expect(self, text: str) -> Token:
        tok = self.tok
        if (text == "end" and tok.kind == "end") or (tok.kind == "op" and tok.text == text):
            self.at += 1
            return tok
        raise ParseError("rule_syntax", tok.pos)

    def nested(self) -> Node:
        self.depth += 1
        if self.depth > self.max_depth:
            raise ParseError("too_deep", self.tok.pos)
        node = self.expr()
        self.depth -= 1
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        mark = self.take("?")
        if mark is None:
            return cond
        yes = self.binary(0)
        self.expect(":")
        return Call(mark.pos, "_?_:_", (cond, yes, self.nested()))

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while (op := self.take(*_BINARY[level])) is not None:
            name = "@in" if op.text == "in" else f"_{op.text}_"
            left = Call(op.pos, name, (left, self.binary(level + 1)))
        return left

    def unary(self) -> Node:
        ops: list[Token] = []
        while not (ops and self.negative_number()):  # "!-2.5": a "!" of the literal -2.5
            op = self.take(*(ops[0].text if ops else "!-"))
            if op is None:
                break
            ops.append(op)  # a run of one operator: CEL has no "!-x" without brackets
        node = self.member()
        for op in reversed(ops):
            node = Call(op.pos, f"{op.text}_", (node,))
        return node

    def member(self) -> Node:
        node = self.primary()
        while True:
            if (dot := self.take(".")) is not None:
                name = self.ident()
                if self.take("(") is None:
                    node = Select(dot.pos, node, name)
                else:
                    node = self.call(dot.pos, name, node)
            elif (bracket := self.take("[")) is not None:
                node = Call(bracket.pos, "_[_]", (node, self.nested()))
                self.expect("]")
            else:
                return node

    def take_number(self) -> Any:
        self.at += 1
        return self.toks[self.at - 1].value

    def ident(self) -> str:
        tok = self.tok
        if tok.kind != "name" or tok.text in RESERVED:
            raise ParseError("rule_syntax", tok.pos)
        self.at += 1
        return tok.text

    def call(self, pos: int, name: str, target: Node | None) -> Node:
        args = self.items(")")
        if target is not None and name in MACROS and len(args) in MACROS[name]:
            var = args[0]
            if isinstance(var, Ident):
                return Macro(pos, name, target, var.name, args[1:])
        return Call(pos, name, args, target)

    def items(self, close: str, pairs: bool = False) -> tuple[Node, ...]:
        out: list[Node] = []
        while self.take(close) is None:
            if out:
                self.expect(",")
                if self.take(close) is not None:  # a trailing comma
                    break
            out.append(self.nested())
            if pairs:
                self.expect(":")
                out.append(self.nested())
        return tuple(out)

    def negative_number(self) -> bool:
        return self.tok.text == "-" and self.toks[self.at + 1].kind == "num"

    def primary(self) -> Node:
        if self.negative_number():
            self.at += 1
            return Lit(self.tok.pos - 1, -self.take_number())
        tok = self.tok
        if tok.kind == "num":
            return Lit(tok.pos, self.take_number())
        if tok.kind == "str":
            self.at += 1
            return Lit(tok.pos, tok.value)
        if tok.kind == "name" and tok.text in ("true", "false", "null"):
            self.at += 1
            return Lit(tok.pos, {"true": True, "false": False, "null": None}[tok.text])
        if tok.kind == "name":
            name = self.ident()
            if self.take("(") is not None:
                return self.call(tok.pos, name, None)
            if self.tok.text == "{":  # a message literal: no messages here
                raise ParseError("rule_syntax", self.tok.pos)
            return Ident(tok.pos, name)
        if self.take("(") is not None:
            node = self.nested()
            self.expect(")")
            return node
        if self.take("[") is not None:
            return ListLit(tok.pos, self.items("]"))
        if self.take("{") is not None:
            return MapLit(tok.pos, self.items("}", pairs=True))
        raise ParseError("rule_syntax", tok.pos)
