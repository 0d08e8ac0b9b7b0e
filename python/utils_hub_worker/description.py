"""The service description (``/me`` and the ``me`` of ``hello``): typed arguments and the checks
the hub makes, done once at definition so that a mistake names its field before any connection."""
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

#: The argument types of the protocol.
ARG_TYPES = ("int", "float", "str", "bool", "json", "image", "audio", "video", "file")
#: The media types among them (their values travel as binary frames).
MEDIA_TYPES = ("image", "audio", "video", "file")
#: Most arguments a service may declare.
MAX_ARGUMENTS = 64

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_ARGUMENT_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_MISSING = object()


@dataclass(frozen=True)
class Arg:
    """One argument of a service, as ``/me`` lists it.

    ``name``: 1 to 64 of ``A-Z a-z 0-9 _``, unique. ``type``: one of ARG_TYPES. ``description``:
    for a person. ``required``: default True (False when a ``default`` is given). ``default``,
    ``choices``, ``min``/``max`` (value of an int/float, length of a str), ``mime`` (accepted media
    types of a media argument), ``max_bytes`` (largest media size) and ``prompt`` (the question a
    chat bot asks) are left out of the description when not given.
    """

    name: str
    type: str
    description: Optional[str] = None
    required: Optional[bool] = None
    default: Any = _MISSING
    choices: Optional[Sequence[Any]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    mime: Optional[Sequence[str]] = None
    max_bytes: Optional[int] = None
    prompt: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        """The argument as the wire writes it (``argument_name``, ``argument_description``, ...)."""
        out: Dict[str, Any] = {"argument_name": self.name, "type": self.type}
        if self.description is not None:
            out["argument_description"] = self.description
        if self.required is not None:
            out["required"] = self.required
        if self.default is not _MISSING:
            out["default"] = self.default
        for key in ("choices", "mime"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        for key in ("min", "max", "max_bytes", "prompt"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _of_type(t: str, v: Any) -> bool:
    if t == "int":
        return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 2**53 - 1
    if t == "float":
        return _number(v) and v == v and v not in (float("inf"), float("-inf"))
    if t == "str":
        return isinstance(v, str)
    if t == "bool":
        return isinstance(v, bool)
    return True


def check_description(me: Dict[str, Any]) -> Dict[str, Any]:
    """Checks a description as the hub does (docs/protocol.md, "The service description");
    raises ValueError naming the field, e.g. ``input[1].argument_name: duplicate "angle"``."""
    name = me.get("name")
    if not isinstance(name, str) or not _SERVICE_NAME.match(name):
        raise ValueError(f"name: must be 1 to 64 of A-Z a-z 0-9 _ . -, got {name!r}")
    if not isinstance(me.get("description"), str) or len(me["description"]) > 65536:
        raise ValueError("description: required, a string of at most 65536 characters")
    for part in ("input", "output"):
        args = me.get(part)
        if args is None and part == "output":
            continue
        if not isinstance(args, list) or len(args) > MAX_ARGUMENTS:
            raise ValueError(f"{part}: must be a list of at most {MAX_ARGUMENTS} arguments")
        seen = set()
        for i, a in enumerate(args):
            at = f"{part}[{i}]"
            n = a.get("argument_name")
            if not isinstance(n, str) or not _ARGUMENT_NAME.match(n):
                raise ValueError(f"{at}.argument_name: must be 1 to 64 of A-Z a-z 0-9 _, got {n!r}")
            if n in seen:
                raise ValueError(f'{at}.argument_name: duplicate "{n}"')
            seen.add(n)
            t = a.get("type")
            if t not in ARG_TYPES:
                raise ValueError(f"{at}.type: must be one of {', '.join(ARG_TYPES)}, got {t!r}")
            for key in ("min", "max"):
                if key in a:
                    if t not in ("int", "float", "str"):
                        raise ValueError(f"{at}.{key}: only int, float and str arguments take {key}")
                    if not _number(a[key]):
                        raise ValueError(f"{at}.{key}: must be a number")
            if "min" in a and "max" in a and a["min"] > a["max"]:
                raise ValueError(f"{at}.min: must not exceed max")
            for key in ("mime", "max_bytes"):
                if key in a and t not in MEDIA_TYPES:
                    raise ValueError(f"{at}.{key}: only media arguments take {key}")
            if "choices" in a:
                if not isinstance(a["choices"], list) or not 1 <= len(a["choices"]) <= 1000:
                    raise ValueError(f"{at}.choices: must be a list of 1 to 1000 values")
                for c in a["choices"]:
                    if not _of_type(t, c):
                        raise ValueError(f"{at}.choices: {c!r} is not of type {t}")
            if "default" in a and a["default"] is not None:
                d = a["default"]
                if not _of_type(t, d):
                    raise ValueError(f"{at}.default: {d!r} is not of type {t}")
                if "choices" in a and d not in a["choices"]:
                    raise ValueError(f"{at}.default: not among the choices")
    return me


def describe(name: str, description: str, input: Sequence[Union[Arg, Dict[str, Any]]], output: Optional[Sequence[Union[Arg, Dict[str, Any]]]] = None) -> Dict[str, Any]:
    """The checked description of a service; ``Arg`` objects and plain dicts both allowed."""

    def as_json(args: Sequence[Union[Arg, Dict[str, Any]]]) -> List[Dict[str, Any]]:
        return [a.to_json() if isinstance(a, Arg) else dict(a) for a in args]

    me: Dict[str, Any] = {"name": name, "description": description, "input": as_json(input)}
    if output is not None:
        me["output"] = as_json(output)
    return check_description(me)


def fill_defaults(input: List[Dict[str, Any]], args: Dict[str, Any]) -> Dict[str, Any]:
    """The args with the defaults the hub should have filled in (for a hub that did not)."""
    out = dict(args)
    for a in input:
        if a["argument_name"] not in out and "default" in a:
            out[a["argument_name"]] = a["default"]
    return out
