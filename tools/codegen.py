"""Generate src/leveret/amqp/spec.py from the machine-readable AMQP 0-9-1 specification.

    python tools/codegen.py [SPEC_JSON] [OUTPUT]

Each method becomes one slotted class with straight-line ``encode`` and ``decode``; the
content properties of class basic become ``Properties``. Fields are typed from their AMQP
domain, so mypy (strict for leveret.amqp) checks every use. Regenerate, never hand-edit.
The spec is vendored in tools/spec/ (see its README) so a fresh clone can regenerate;
tests/amqp/test_spec.py fails when the committed module differs from the generator's.
"""

from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_NAME = "tools/spec/amqp-rabbitmq-0.9.1.json"  # named in the generated module's header
DEFAULT_SPEC = ROOT / SPEC_NAME
DEFAULT_OUT = ROOT / "src" / "leveret" / "amqp" / "spec.py"

STRUCTS = {"octet": ("B", 1), "short": ("H", 2), "long": ("I", 4), "longlong": ("Q", 8),
           "timestamp": ("Q", 8)}
# The Python type of each AMQP domain, as decode produces it (encode_longstr and
# encode_shortstr also take the other of str and bytes, but decode never returns it).
PYTYPES = {"octet": "int", "short": "int", "long": "int", "longlong": "int",
           "timestamp": "int", "bit": "bool", "shortstr": "str", "longstr": "bytes",
           "table": "FieldTable"}


def pyname(name: str) -> str:
    name = name.replace("-", "_")
    return name + "_" if keyword.iskeyword(name) else name


def classname(cls: str, method: str) -> str:
    return "".join(p.capitalize() for p in f"{cls}-{method}".split("-"))


def resolve(domains: dict[str, str], arg: dict[str, Any]) -> str:
    t: str = arg.get("type") or arg["domain"]
    while t in domains and domains[t] != t:
        t = domains[t]
    return t


def default_literal(t: str, value: object) -> str:
    if t == "table":
        return "None"
    if value is None:
        return {"bit": "False", "shortstr": "''", "longstr": "b''"}.get(t, "0")
    if t == "longstr":
        return repr(str(value).encode())
    return repr(value)


def gen_encode(fields: list[tuple[str, str]]) -> list[str]:
    out = ["    def encode(self) -> bytes:", "        parts = [_HEAD_%s]"]
    i = 0
    while i < len(fields):
        name, t = fields[i]
        if t == "bit":
            bits = []
            while i < len(fields) and fields[i][1] == "bit":
                bits.append(fields[i][0])
                i += 1
            expr = " | ".join(f"({1 << k} if self.{b} else 0)"
                              for k, b in enumerate(bits))
            out.append(f"        parts.append(_B.pack({expr}))")
            continue
        if t in STRUCTS:
            out.append(f"        parts.append(_{STRUCTS[t][0]}.pack(self.{name}))")
        elif t == "shortstr":
            out.append(f"        parts.append(encode_shortstr(self.{name}))")
        elif t == "longstr":
            out.append(f"        parts.append(encode_longstr(self.{name}))")
        elif t == "table":
            out.append(f"        parts.append(encode_table(self.{name}))")
        else:
            raise ValueError(t)
        i += 1
    out.append("        return b''.join(parts)")
    return out


def gen_decode(cname: str, fields: list[tuple[str, str]], content: bool) -> list[str]:
    """``decode`` refuses arguments that stop short or run on, as RabbitMQ does (501). Short
    strings must be UTF-8 except in content-carrying methods: RabbitMQ takes any bytes in
    basic.publish's exchange and routing key, so deliver, return and get-ok carry them."""
    shortstr = "decode_shortstr" if content else "decode_checked_shortstr"
    out = ["    @classmethod", f"    def decode(cls, buf: Buffer, off: int = 0) -> {cname}:",
           "        try:",
           "            return cls._decode(buf, off)",
           "        except _MALFORMED as exc:",
           "            raise FrameError(f'malformed {cls.NAME}: {exc}') from None",
           "",
           "    @classmethod",
           f"    def _decode(cls, buf: Buffer, off: int) -> {cname}:",
           "        self = cls.__new__(cls)"]
    i = 0
    while i < len(fields):
        name, t = fields[i]
        if t == "bit":
            out.append("        bits = buf[off]")
            out.append("        off += 1")
            k = 0
            while i < len(fields) and fields[i][1] == "bit":
                out.append(f"        self.{fields[i][0]} = bool(bits & {1 << k})")
                k += 1
                i += 1
            continue
        if t in STRUCTS:
            code, size = STRUCTS[t]
            out.append(f"        (self.{name},) = _{code}.unpack_from(buf, off)")
            out.append(f"        off += {size}")
        elif t == "shortstr":
            out.append(f"        self.{name}, off = {shortstr}(buf, off)")
        elif t == "longstr":
            out.append(f"        self.{name}, off = decode_longstr(buf, off)")
        elif t == "table":
            out.append(f"        self.{name}, off = decode_table(buf, off)")
        i += 1
    out += ["        if off != len(buf):",
            "            raise FrameError(f'{len(buf) - off} bytes after the arguments')",
            "        return self"]
    return out


def generate(spec: dict[str, Any]) -> str:
    domains = {d[0]: d[1] for d in spec["domains"]}
    lines = [
        '"""AMQP 0-9-1 methods and content properties, with RabbitMQ\'s extensions.',
        "",
        f"GENERATED by tools/codegen.py from {SPEC_NAME}: do not edit.",
        '"""',
        "# ruff: noqa",
        "from __future__ import annotations",
        "",
        "import struct",
        "from typing import Any, ClassVar",
        "",
        "from leveret.errors import FrameError",
        "from leveret.amqp.fields import (Buffer, FieldTable, decode_checked_shortstr,",
        "                                 decode_longstr, decode_shortstr, decode_table,",
        "                                 encode_longstr, encode_shortstr, encode_table)",
        "",
        "_B = struct.Struct('>B')",
        "_H = struct.Struct('>H')",
        "_I = struct.Struct('>I')",
        "_Q = struct.Struct('>Q')",
        "_MALFORMED = (struct.error, IndexError, ValueError)",
        "",
    ]
    for c in spec["constants"]:
        lines.append(f"{pyname(c['name']).upper()} = {c['value']}")
    lines += [
        "",
        "",
        "class Method:",
        '    """Base of every method class: identity, and equality by field values."""',
        "",
        "    __slots__ = ()",
        "    NAME: ClassVar[str]",
        "    CLASS_ID: ClassVar[int]",
        "    METHOD_ID: ClassVar[int]",
        "    INDEX: ClassVar[int]",
        "    SYNCHRONOUS: ClassVar[bool]",
        "    CONTENT: ClassVar[bool]",
        "    REPLY: ClassVar[str | None]",
        "",
        "    def encode(self) -> bytes:",
        "        raise NotImplementedError",
        "",
        "    @classmethod",
        "    def decode(cls, buf: Buffer, off: int = 0) -> Method:",
        "        raise NotImplementedError",
        "",
        "    def _fields(self) -> tuple[str, ...]:",
        "        return type(self).__slots__",
        "",
        "    def __eq__(self, other: object) -> bool:",
        "        return type(self) is type(other) and all(",
        "            getattr(self, s) == getattr(other, s) for s in self._fields())",
        "",
        "    __hash__ = None  # type: ignore[assignment]",
        "",
        "    def __repr__(self) -> str:",
        "        args = ', '.join(f'{s}={getattr(self, s)!r}' for s in self._fields())",
        "        return f'<{self.NAME} {args}>'",
        "",
    ]
    index_entries = []
    for cls in spec["classes"]:
        names = {m["name"] for m in cls["methods"]}
        for m in cls["methods"]:
            cname = classname(cls["name"], m["name"])
            fields = [(pyname(a["name"]), resolve(domains, a)) for a in m["arguments"]]
            defaults = [default_literal(t, a.get("default-value"))
                        for (_, t), a in zip(fields, m["arguments"], strict=True)]
            index = (cls["id"] << 16) | m["id"]
            reply = f"{cls['name']}.{m['name']}-ok" if f"{m['name']}-ok" in names else None
            lines += ["", "", f"class {cname}(Method):",
                      f"    __slots__ = ({''.join(repr(f) + ', ' for f, _ in fields)})",
                      f"    NAME = '{cls['name']}.{m['name']}'",
                      f"    CLASS_ID = {cls['id']}", f"    METHOD_ID = {m['id']}",
                      f"    INDEX = {index:#010x}",
                      f"    SYNCHRONOUS = {bool(m.get('synchronous'))}",
                      f"    CONTENT = {bool(m.get('content'))}",
                      f"    REPLY = {reply!r}", ""]
            sig = ", ".join(f"{f}: {PYTYPES[t]}{' | None' if d == 'None' else ''} = {d}"
                            for (f, t), d in zip(fields, defaults, strict=True))
            lines.append(f"    def __init__(self{', ' if sig else ''}{sig}) -> None:")
            for (f, t), _d in zip(fields, defaults, strict=True):
                if t == "table":
                    lines.append(f"        self.{f}: FieldTable = {f} if {f} is not None else {{}}")
                else:
                    lines.append(f"        self.{f} = {f}")
            if not fields:
                lines.append("        pass")
            lines.append("")
            lines += [ln.replace("%s", cname) for ln in gen_encode(fields)]
            lines.append("")
            lines += gen_decode(cname, fields, bool(m.get("content")))
            lines.insert(lines.index("class Method:") - 2,
                         f"_HEAD_{cname} = struct.pack('>HH', {cls['id']}, {m['id']})")
            index_entries.append(f"    {index:#010x}: {cname},")
    lines += ["", "", "METHODS: dict[int, type[Method]] = {", *index_entries, "}",
              "BY_NAME: dict[str, type[Method]] = {m.NAME: m for m in METHODS.values()}"]
    lines += gen_properties(domains, spec)
    return "\n".join(lines) + "\n"


def gen_properties(domains: dict[str, str], spec: dict[str, Any]) -> list[str]:
    basic = next(c for c in spec["classes"] if c["name"] == "basic")
    props = [(pyname(p["name"]), resolve(domains, p)) for p in basic["properties"]]
    out = ["", "", "class Properties:",
           '    """basic content properties; an absent property is None."""', "",
           f"    __slots__ = ({''.join(repr(f) + ', ' for f, _ in props)})", ""]
    sig = ", ".join(f"{f}: {PYTYPES[t]} | None = None" for f, t in props)
    out.append(f"    def __init__(self, {sig}) -> None:")
    out += [f"        self.{f} = {f}" for f, _ in props]
    out += ["", "    def encode(self) -> bytes:", "        flags = 0", "        parts = []"]
    for k, (f, t) in enumerate(props):
        bit = 1 << (15 - k)
        out.append(f"        if self.{f} is not None:")
        out.append(f"            flags |= {bit:#06x}")
        if t in STRUCTS:
            out.append(f"            parts.append(_{STRUCTS[t][0]}.pack(self.{f}))")
        else:
            out.append(f"            parts.append(encode_{t}(self.{f}))")
    out += ["        return _H.pack(flags) + b''.join(parts)", "",
            "    @classmethod", "    def decode(cls, buf: Buffer, off: int = 0) -> Properties:",
            "        try:",
            "            return cls._decode(buf, off)",
            "        except _MALFORMED as exc:",
            "            raise FrameError(f'malformed content properties: {exc}') from None",
            "",
            "    @classmethod", "    def _decode(cls, buf: Buffer, off: int) -> Properties:",
            "        self = cls.__new__(cls)", "        (flags,) = _H.unpack_from(buf, off)",
            "        off += 2",
            "        if flags & 1:",
            "            raise FrameError('content header property flags continue: not 0-9-1')"]
    for k, (f, t) in enumerate(props):
        bit = 1 << (15 - k)
        out.append(f"        if flags & {bit:#06x}:")
        if t in STRUCTS:
            code, size = STRUCTS[t]
            out.append(f"            (self.{f},) = _{code}.unpack_from(buf, off)")
            out.append(f"            off += {size}")
        else:
            out.append(f"            self.{f}, off = decode_{t}(buf, off)")
        out.append("        else:")
        out.append(f"            self.{f} = None")
    out += ["        if off != len(buf):",  # RabbitMQ: 541 for a byte the flags do not name
            "            raise FrameError(f'{len(buf) - off} bytes after the properties')",
            "        return self", "",
            "    def __eq__(self, other: object) -> bool:",
            "        return type(self) is type(other) and all(",
            "            getattr(self, s) == getattr(other, s) for s in self.__slots__)", "",
            "    __hash__ = None  # type: ignore[assignment]", "",
            "    def __repr__(self) -> str:",
            "        args = ', '.join(f'{s}={getattr(self, s)!r}' for s in self.__slots__",
            "                         if getattr(self, s) is not None)",
            "        return f'<Properties {args}>'"]
    return out


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    out_path.write_text(generate(json.loads(spec_path.read_text())))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
