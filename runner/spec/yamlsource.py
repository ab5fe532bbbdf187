"""YAML with line numbers: plain Python data plus a map from field path to the line it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runner.errors import SpecError

Path_ = tuple  # a field path such as ("models", "x", "hyperparameters", "batch_size")

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
        raise SpecError([f"{display}:1: not valid UTF-8 (byte {exc.start})"]) from None
    except OSError as exc:
        raise SpecError([f"{display}: cannot read: {exc.strerror}"]) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError([f"{display}:{line}: NUL character in YAML"])
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError([f"{display}:{line}: invalid YAML: {reason}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{display}:1: invalid YAML: {exc}"]) from None
    doc = YamlDocument(path=path, display=display, data=None)
    if node is None:
        return doc
    problems: list[str] = []
    doc.data = _construct(node, (), doc, problems)
    if problems:
        raise SpecError(problems)
    return doc


def _construct(node: yaml.Node, path: Path_, doc: YamlDocument, problems: list[str], depth: int = 0):
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if depth > 64:
        problems.append(f"{doc.display}:{node.start_mark.line + 1}: nesting deeper than 64 levels")
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(f"{doc.display}:{key_node.start_mark.line + 1}: mapping keys must be plain strings")
                continue
            key = key_node.value
            if key == "<<":
                problems.append(f"{doc.display}:{key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported")
                continue
            if key in result:
                first = doc.lines[path + (key,)]
                problems.append(
                    f"{doc.display}:{key_node.start_mark.line + 1}: {_dotted(path + (key,))}: "
                    f"duplicate key (first defined on line {first})"
                )
                continue
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, path + (key,), doc, problems, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, problems, depth + 1) for i, item in enumerate(node.value)]
    return _scalar(node, doc, problems)


def _scalar(node: yaml.ScalarNode, doc: YamlDocument, problems: list[str]):
    try:
        return _Loader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        problems.append(f"{doc.display}:{node.start_mark.line + 1}: cannot read value {node.value!r}: {exc}")
        return None


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


dotted = _dotted
