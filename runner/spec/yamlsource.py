"""YAML with line numbers: plain Python data plus a map from field path to the line it came from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runner.errors import Problem, SpecError

Path_ = tuple  # a field path such as ("models", "x", "hyperparameters", "batch_size")

MAX_DEPTH = 64
_STR_TAG = "tag:yaml.org,2002:str"
MAX_VALUES = 200_000

try:  # the C loader is an order of magnitude faster; fall back where libyaml is absent
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


@dataclass
class YamlDocument:
    path: Path
    display: str  # the path as shown in messages (relative to the project root)
    data: object
    lines: dict[Path_, int] = field(default_factory=dict)
    values: int = 0  # constructed so far, aliases counted each time they expand
    # Values that could not be read (a .nan, a duplicate key...): reported here, left out of `data`, and
    # still read past, so that every other error of the file is reported with them.
    problems: list[str] = field(default_factory=list)
    refused: set[Path_] = field(default_factory=set)

    def line_of(self, path: Path_) -> int:
        """The line of the deepest recorded ancestor of path (a missing key points at its parent)."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def where(self, path: Path_) -> str:
        return f"{self.display}:{self.line_of(path)}"


def load_yaml(path: Path, display: str) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(display, f"not valid UTF-8 (byte {exc.start})", 1)]) from None
    except OSError as exc:
        raise SpecError([Problem(display, f"cannot read: {exc.strerror}")]) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError([Problem(display, "NUL character in YAML", line)])
    try:
        depth, line = _nesting(text)
        if depth > MAX_DEPTH:
            raise SpecError([Problem(display, f"nesting deeper than {MAX_DEPTH} levels", line)])
        node = yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:  # a forbidden character: blame its own line
        line = text.count("\n", 0, exc.position) + 1
        reason = f"invalid YAML: unacceptable character #x{exc.character:04x}"
        raise SpecError([Problem(display, reason, line)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError([Problem(display, f"invalid YAML: {reason}", line)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(display, f"invalid YAML: {exc}", 1)]) from None
    doc = YamlDocument(path=path, display=display, data=None)
    if node is None:
        return doc
    doc.data = _construct(node, (), doc, doc.problems)
    return doc


def _construct(node: yaml.Node, path: Path_, doc: YamlDocument, problems: list[str], depth: int = 0):
    doc.values += 1
    if doc.values > MAX_VALUES:  # aliases of aliases expand exponentially: a "billion laughs" spec
        raise SpecError([Problem(doc.display, f"the spec expands to more than {MAX_VALUES:,} values (YAML aliases "
                                              f"repeating aliases?)", node.start_mark.line + 1)])
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if depth > 64:
        problems.append(Problem(doc.display, "nesting deeper than 64 levels", node.start_mark.line + 1))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(doc.display, "mapping keys must be plain strings",
                                        key_node.start_mark.line + 1))
                continue
            key = key_node.value
            if key == "<<":
                problems.append(Problem(doc.display, "YAML merge keys (<<) are not supported",
                                        key_node.start_mark.line + 1))
                continue
            if key in result:
                first = doc.lines[path + (key,)]
                problems.append(Problem(doc.display, f"duplicate key (first defined on line {first})",
                                        key_node.start_mark.line + 1, path=dotted(path + (key,))))
                continue
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, path + (key,), doc, problems, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, problems, depth + 1) for i, item in enumerate(node.value)]
    return _scalar(node, path, doc, problems)


def _scalar(node: yaml.ScalarNode, path: Path_, doc: YamlDocument, problems: list[str]):
    def problem(message: str) -> None:
        doc.refused.add(path)
        problems.append(Problem(doc.display, message, node.start_mark.line + 1, path=dotted(path) or "(top level)"))

    if node.tag == _STR_TAG:
        return node.value  # what the constructor would return, without building a loader for each string
    try:
        value = _Loader("").construct_object(node, deep=True)
    except Exception as exc:  # odd tagged scalars raise Value, Index, Key or AttributeError alike
        problem(f"cannot read value {node.value[:40]!r} ({type(exc).__name__})")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problem(f"{node.value!r} is not a finite number")
        return None
    return value


def _nesting(text: str) -> tuple[int, int]:
    """The deepest collection nesting and its line, from libyaml's event stream.

    libyaml's parser keeps its own stack, but composing nodes recurses in C and crashes the process on
    absurd depths, so depth is measured on events first. Brackets inside scalars are scalar text here.
    """
    depth = deepest = 0
    line = 1
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > deepest:
                deepest, line = depth, event.start_mark.line + 1
                if deepest > MAX_DEPTH:
                    break
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest, line


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


