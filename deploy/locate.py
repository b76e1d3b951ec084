"""YAML with line numbers, and the problems found in it: where each error points.

A YAML node tree keeps the line of every value; a pydantic error location such as
``('spec', 'components', 1, 'name')`` is walked down that tree to report the line.

Parsing is bounded, since a stored spec is read by every controller and one that
exhausts the stack or the memory would take every app down with it: at most
``MAX_MANIFEST_BYTES`` of text, ``MAX_DEPTH`` levels of nesting (checked while
composing, before PyYAML's recursive composer can overflow the stack) and
``MAX_VALUES`` values once aliases are expanded (an alias bomb is small as text);
a recursive alias is refused. Each is a ``ManifestSyntaxError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from deploy.errors import (
    ManifestError,
    ManifestSchemaError,
    ManifestSyntaxError,
    Problem,
)

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

# A wadm manifest is a few kB and some ten levels deep.
MAX_MANIFEST_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000


def parse_yaml(text: str, source: str) -> tuple[yaml.Node, Any]:
    """The composed node tree and the plain data built from it."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MANIFEST_BYTES:
        message = f"the manifest is {size} bytes: at most {MAX_MANIFEST_BYTES} are accepted"
        raise ManifestSyntaxError([Problem(message, source=source)])
    try:
        root = _compose(text, source)
        if root is None:
            raise ManifestSyntaxError([Problem("the manifest is empty", source=source)])
        _check_expanded_size(root, source)
        _check_duplicate_keys(root, source)
        return root, _construct(root)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ManifestSyntaxError([Problem(_yaml_message(e), line=line, source=source)]) from e
    except yaml.reader.ReaderError as e:
        # A character YAML does not allow (a control character, say): PyYAML gives
        # only an offset into "<unicode string>"; name the line and the character.
        line = text.count("\n", 0, e.position) + 1
        message = f"not YAML: the character {chr(e.character)!r} is not allowed"
        raise ManifestSyntaxError([Problem(message, line=line, source=source)]) from e
    except yaml.YAMLError as e:
        raise ManifestSyntaxError([Problem(f"not YAML: {e}", source=source)]) from e


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses nesting deeper than ``MAX_DEPTH``."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
                message = f"the manifest nests deeper than {MAX_DEPTH} levels"
                raise ManifestSyntaxError([Problem(message, line=line, source=self.source)])
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self.depth -= 1


def _compose(text: str, source: str) -> yaml.Node | None:
    loader = _BoundedLoader(text, source)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """Count values as if every alias were a copy (iteratively: no recursion limit)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_VALUES:
                message = f"the manifest holds more than {MAX_VALUES} values (aliases expanded)"
                raise ManifestSyntaxError([Problem(message, source=source)])
            continue
        if key in sizes:
            continue
        if key in on_path:
            line = node.start_mark.line + 1
            message = "a recursive alias (a value containing itself) is not allowed"
            raise ManifestSyntaxError([Problem(message, line=line, source=source)])
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _construct(root: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    context = error.context or ""
    start, end = error.context_mark, error.problem_mark
    if context and start is not None and (end is None or start.line != end.line):
        context += f" (from line {start.line + 1})"
    return "YAML syntax error: " + "; ".join(part for part in (context, error.problem) if part)


def _check_duplicate_keys(root: yaml.Node, source: str) -> None:
    """PyYAML keeps the last of duplicate keys silently; a manifest must not have any."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_mapping_keys(node, source)
            stack.extend(value for pair in node.value for value in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_mapping_keys(node: yaml.MappingNode, source: str) -> None:
    first_line: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
            continue
        line = key.start_mark.line + 1
        if key.value in first_line:
            message = f"duplicate key '{key.value}' (first at line {first_line[key.value]})"
            raise ManifestSyntaxError([Problem(message, line=line, source=source)])
        first_line[key.value] = line


class Locator:
    """Maps a pydantic error location to the node it names, for its line."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root

    def find(self, loc: Loc) -> tuple[Loc, int]:
        """(the parts of ``loc`` found in the YAML, 1-based line of the deepest one).

        Parts that are not keys or indexes of the YAML (pydantic's union or validator
        tags) are skipped, except a last part that is missing: it is the field required.
        """
        node, line, shown = self.root, self.root.start_mark.line, []
        for i, part in enumerate(loc):
            child = _child(node, part)
            if child is None:
                if i == len(loc) - 1:
                    shown.append(part)
                continue
            line, node = child
            shown.append(part)
        return tuple(shown), line + 1


def _child(node: yaml.Node, part: str | int) -> tuple[int, yaml.Node] | None:
    """(0-based line of the key or item, value node) for ``part`` of ``node``."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key.start_mark.line, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            item: yaml.Node = node.value[part]
            return item.start_mark.line, item
    return None


def format_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# -- collecting problems --------------------------------------------------------------


@dataclass
class Report:
    source: str
    locator: Locator
    found: list[tuple[type[ManifestError], Problem]] = field(default_factory=list)
    # Problems wadm warns about: reported with the spec, never a refusal.
    warnings: list[Problem] = field(default_factory=list)

    def warn(self, loc: Loc, message: str) -> None:
        shown, line = self.locator.find(loc)
        self.warnings.append(Problem(message, format_path(shown), line, self.source))

    def add(self, kind: type[ManifestError], loc: Loc, message: str) -> None:
        shown, line = self.locator.find(loc)
        self.found.append((kind, Problem(message, format_path(shown), line, self.source)))

    def line_of(self, loc: Loc) -> int:
        return self.locator.find(loc)[1]

    def add_validation(self, error: ValidationError, prefix: Loc) -> None:
        for item in error.errors():
            self.add(ManifestSchemaError, prefix + tuple(item["loc"]), _pydantic_message(item))

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda found: found[1].line or 0)
            raise ordered[0][0]([problem for _, problem in ordered])


def _pydantic_message(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] in ("model_type", "dict_type"):
        return "Input should be a mapping"
    message: str = item["msg"]
    return message.removeprefix("Value error, ")


def validate(report: Report, model: type[M], data: Any, loc: Loc) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        report.add_validation(e, loc)
        return None
