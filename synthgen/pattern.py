"""Pattern files: a canvas size and the templates to scatter on it.

Format (plain text, one item a line, ``#`` starts a comment, blank lines ignored)::

    WIDTH HEIGHT               # first item: canvas resolution in pixels
    templates/t01.png cube     # then PATH [CLASS]; PATH relative to the pattern file,
    templates/t02.png sphere   # CLASS optional (default cube; aliases like quasi-sphere work)

``parse_pattern`` is pure text -> entries; ``load_pattern`` reads the file and its templates.
Every defect is collected as ``InputError(path, line)`` and raised together as ``InputErrors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from synthgen.classes import CLASS_NAMES, canonical_class
from synthgen.errors import InputError, InputErrors
from synthgen.templates import Template, load_template

DEFAULT_CLASS = "cube"
MAX_CANVAS_SIDE = 20000  # a larger "resolution" is surely a typo


@dataclass(frozen=True, slots=True)
class PatternEntry:
    path: Path  # resolved against the pattern file's folder
    class_name: str  # canonical project class
    line: int

    @property
    def class_id(self) -> int:
        return CLASS_NAMES.index(self.class_name)


@dataclass(frozen=True)
class Pattern:
    source: Path
    width: int
    height: int
    entries: tuple[PatternEntry, ...]
    templates: tuple[Template, ...] = ()  # filled by load_pattern, parallel to entries

    @property
    def name(self) -> str:
        """Short display name: the pattern file, or its folder when the file is a generic pattern.txt."""
        return self.source.parent.name if self.source.stem == "pattern" else self.source.stem

    def counts_per_class(self) -> dict[str, int]:
        return {c: sum(e.class_name == c for e in self.entries) for c in CLASS_NAMES}


def _strip_comment(raw: str) -> str:
    return raw.split("#", 1)[0].strip()


def _parse_size(item: str, source: Path, line: int) -> tuple[int, int]:
    parts = item.split()
    if len(parts) != 2:
        raise InputError(f"expected the canvas size 'WIDTH HEIGHT' as the first item, got {item!r}", source, line)
    size = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise InputError(f"bad number {p!r} in 'WIDTH HEIGHT': expected a positive integer", source, line) from None
        if not 0 < v <= MAX_CANVAS_SIDE:
            raise InputError(f"bad canvas size {v}: expected 1..{MAX_CANVAS_SIDE} pixels", source, line)
        size.append(v)
    return size[0], size[1]


def _parse_entry(item: str, source: Path, line: int) -> PatternEntry:
    tokens = item.split()
    # The class is the last one or two words when they name a class ("quasi sphere" has a space).
    for n in (2, 1):
        if len(tokens) > n and canonical_class(" ".join(tokens[-n:])) is not None:
            path_text = item.rsplit(None, n)[0]
            cls = canonical_class(" ".join(tokens[-n:]))
            break
    else:
        if len(tokens) == 1:
            path_text, cls = tokens[0], DEFAULT_CLASS
        elif len(tokens) == 2:
            raise InputError(
                f"unknown class {tokens[1]!r} (known: {', '.join(CLASS_NAMES)} and aliases like quasi-sphere)",
                source,
                line,
            )
        else:
            raise InputError(f"malformed line {item!r}: expected 'PATH [CLASS]'", source, line)
    return PatternEntry(path=(source.parent / path_text), class_name=cls, line=line)


def parse_pattern(text: str, source: str | Path) -> Pattern:
    """Pure parse of a pattern file's text; raises InputErrors listing every bad line."""
    source = Path(source)
    errors: list[InputError] = []
    size: tuple[int, int] | None = None
    first_line: int | None = None
    entries: list[PatternEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        item = _strip_comment(raw)
        if not item:
            continue
        try:
            if first_line is None:
                first_line = number
                size = _parse_size(item, source, number)
            else:
                entries.append(_parse_entry(item, source, number))
        except InputError as e:
            errors.append(e)
    if first_line is None:
        errors.append(InputError("empty pattern: expected 'WIDTH HEIGHT' and then one template per line", source))
    elif not entries and not errors:
        errors.append(InputError("empty pattern: no template lines after 'WIDTH HEIGHT'", source, first_line))
    if errors:
        raise InputErrors(errors)
    assert size is not None
    return Pattern(source=source, width=size[0], height=size[1], entries=tuple(entries))


def load_pattern(path: str | Path) -> Pattern:
    """Read, parse and load every template of a pattern file; raises InputErrors with all defects."""
    path = Path(path)
    if path.is_dir() and (path / "pattern.txt").is_file():
        path = path / "pattern.txt"
    if not path.is_file():
        raise InputErrors([InputError("pattern file not found", path)])
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate a BOM from Windows editors
    except UnicodeDecodeError:
        raise InputErrors([InputError("not a text file (expected a pattern file)", path)]) from None
    try:
        pattern = parse_pattern(text, path)
    except InputErrors as e:
        parse_errors = e.errors
        # Still check the template files of the lines that did parse, to report everything at once.
        pattern = _partial(text, path)
        _, template_errors = _load_templates(pattern)
        raise InputErrors(sorted(parse_errors + template_errors, key=lambda e: e.line or 0)) from None
    templates, errors = _load_templates(pattern)
    if errors:
        raise InputErrors(errors)
    return Pattern(pattern.source, pattern.width, pattern.height, pattern.entries, tuple(templates))


def _partial(text: str, source: Path) -> Pattern:
    """The parseable part of a defective pattern (size 0 x 0 when the size line is bad)."""
    size, entries, seen_first = (0, 0), [], False
    for number, raw in enumerate(text.splitlines(), start=1):
        item = _strip_comment(raw)
        if not item:
            continue
        try:
            if not seen_first:
                seen_first = True
                size = _parse_size(item, source, number)
            else:
                entries.append(_parse_entry(item, source, number))
        except InputError:
            pass
    return Pattern(source, size[0], size[1], tuple(entries))


def _load_templates(pattern: Pattern) -> tuple[list[Template], list[InputError]]:
    templates, errors = [], []
    for e in pattern.entries:
        try:
            t = load_template(e.path)
        except InputError as err:
            errors.append(InputError(f"{err.msg}: {e.path}", pattern.source, e.line))
            continue
        w, h = t.size
        if pattern.width and (w > pattern.width or h > pattern.height):
            errors.append(
                InputError(
                    f"template {e.path.name} is {w}x{h}, larger than the {pattern.width}x{pattern.height} canvas",
                    pattern.source,
                    e.line,
                )
            )
            continue
        templates.append(t)
    return templates, errors


def check_patterns(paths: Iterable[str | Path]) -> list[InputError]:
    """Every defect of every pattern file (empty list when all are usable)."""
    try:
        load_patterns(paths)
    except InputErrors as e:
        return e.errors
    return []


def load_patterns(paths: Iterable[str | Path]) -> list[Pattern]:
    """Load several pattern files, raising one InputErrors with the defects of all of them."""
    patterns, errors = [], []
    for p in paths:
        try:
            patterns.append(load_pattern(p))
        except InputErrors as e:
            errors.extend(e.errors)
    if errors:
        raise InputErrors(errors)
    return patterns


# --------------------------------------------------------------------------- writing


def template_paths(count: int) -> list[str]:
    """Relative paths for the templates of a written pattern: templates/t01.png, ... (zero-padded so they sort)."""
    digits = max(2, len(str(count)))
    return [f"templates/t{j + 1:0{digits}d}.png" for j in range(count)]


def format_pattern(comments: Sequence[str], size: tuple[int, int], entries: Sequence[tuple[str, str]]) -> str:
    """Pattern-file text: '# ' comment lines, the canvas 'W H', then one 'path class' line per template."""
    lines = [f"# {c}" for c in comments] + [f"{size[0]} {size[1]}"] + [f"{path} {cls}" for path, cls in entries]
    return "\n".join(lines) + "\n"
