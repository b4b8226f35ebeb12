"""Params files and the errors about them: reading a YAML file (UTF-8, no repeated key, not empty), the strict field
types and safe-name pattern the configs share, `CheckError` (what a failed check raises) and `describe`, which turns
a pydantic ValidationError into lines of `field: got X; expected Y`.

Used by `studykit.config.schema`, `studykit.study.spec` and `studykit.config.validation`; imports none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StrictInt, ValidationError

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a name that becomes a folder, a file or an experiment name
NAME_HINT = "a name of letters, digits, '_', '.' and '-' that starts with a letter or digit (it becomes part of a path)"


def _not_bool(value: Any) -> Any:
    """Refuse a boolean where a number is expected (pydantic's lax float takes True as 1.0)."""
    if isinstance(value, bool):
        raise ValueError(f"got {value!r}; expected a number, not a boolean")
    return value


Int = StrictInt  # no bool, no "3", no 3.0
Num = Annotated[float, BeforeValidator(_not_bool)]  # finite where the model sets allow_inf_nan=False; 1 and "1e-4" ok
Bool = StrictBool
Seed = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]  # numpy's seed range


class CheckError(ValueError):
    """A failed check: `message` says what was given and what is allowed; `key` is the sub-field it concerns (dotted,
    relative to the validated field or section), or None for the field itself."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def short(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- YAML


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that repeats a key; `line` and `first_line` are 1-based."""

    def __init__(self, key: Any, line: int, first_line: int):
        super().__init__(f"line {line}: duplicate key {key!r} (first given on line {first_line}); "
                         "YAML would silently keep only the last value")
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that raises DuplicateKeyError on a key repeated in one mapping (merge keys `<<` excepted)."""

    def construct_mapping(self, node, deep=False):
        """The mapping of `node`, after checking its explicit keys are distinct."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if repeated:
                    raise DuplicateKeyError(key, key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_params(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a params file, or CheckError naming the file: missing, not UTF-8, not YAML, a key
    repeated (with its line), empty (an empty file is not the full default recipe), or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise CheckError(f"params file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CheckError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason}); expected a YAML "
                         "params file") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise CheckError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise CheckError(f"{path}: not valid YAML: {str(err).replace('<unicode string>', str(path))}") from None
    if data is None:
        raise CheckError(f"{path}: the file is empty; expected a mapping of sections (write {{}} to mean every "
                         "default, the paper's full recipe)")
    if not isinstance(data, dict):
        raise CheckError(f"{path}: got a {type(data).__name__} at the top level; expected a mapping of sections")
    return data


# ---- pydantic errors as "field: got X; expected Y"


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model class inside an annotation (list[M], M | None, dict[str, M]); True when it sits under a dict key."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in get_args(annotation):
        found, _ = _model_in(arg)
        if found is not None:
            return found, get_origin(annotation) is dict
    return None, False


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed in the section at `loc` of `model` ([] when it is not a section)."""
    cls, key_next = model, False
    for part in loc:
        if key_next or isinstance(part, int):
            key_next = False
            continue
        field = cls.model_fields.get(part)
        cls, key_next = _model_in(field.annotation) if field is not None else (None, False)
        if cls is None:
            return []
    return list(cls.model_fields)


def _explain(e: dict[str, Any], model: type[BaseModel] | None) -> str:
    kind, msg, value = e["type"], e["msg"], e.get("input")
    cause = (e.get("ctx") or {}).get("error")
    if kind == "extra_forbidden":
        keys = _keys_at(model, e["loc"][:-1]) if model is not None else []
        return "unknown key" + (f"; expected one of {', '.join(keys)}" if keys else "")
    if kind in ("value_error", "assertion_error") and cause is not None:
        return str(cause)
    if kind == "missing":
        return "missing; expected a value (required)"
    if kind == "string_pattern_mismatch":
        return f"got {short(value)}; expected {NAME_HINT}"
    if kind == "int_type":
        return f"got {short(value)}; expected an integer" + (", not a boolean" if isinstance(value, bool) else "")
    if kind == "bool_type":
        return f"got {short(value)}; expected true or false"
    if kind == "too_short":
        return f"got {short(value)}; expected at least {e['ctx']['min_length']} item(s)"
    return f"got {short(value)}; {msg.replace('Input should be', 'expected')}"


def describe(err: ValidationError, header: str, model: type[BaseModel] | None = None) -> str:
    """`header`, then one line per error: `field: got X; expected Y` (the field is the error's location plus the
    CheckError's `key`; unknown keys list the section's keys from `model`)."""
    lines = [header]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, CheckError) and cause.key:
            loc += cause.key.split(".")
        lines.append(f"  {'.'.join(loc) or '<root>'}: {_explain(e, model)}")
    return "\n".join(lines)
