"""Checking that an adapter or a test fake implements a service's port (a ``typing.Protocol``).

A fake that drifts from the port it stands in for makes unit tests pass against an interface the real
adapter no longer has. Each service's ports test runs this over every (implementation, port) pair, so a
method renamed, removed or given other parameters on either side fails a test.
"""

from __future__ import annotations

import inspect
from typing import Any


def port_members(protocol: type) -> list[str]:
    """The methods and attributes a Protocol declares (its own and its bases', not object's)."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base in (object,) or base.__name__ in ("Protocol", "Generic"):
            continue
        names |= {n for n in vars(base) if not n.startswith("_")}
        names |= set(getattr(base, "__annotations__", {}))
    return sorted(names)


def _shape(fn: Any) -> list[tuple[str, Any, bool]]:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty) for p in params]


def mismatches(impl: type, protocol: type) -> list[str]:
    """What ``impl`` lacks or declares differently from ``protocol``; empty when it implements it."""
    problems: list[str] = []
    for name in port_members(protocol):
        expected = getattr(protocol, name, None)
        if not callable(expected):  # a declared attribute: the class or its instances must have it
            annotations: dict[str, Any] = {}
            for base in reversed(impl.__mro__):
                annotations.update(getattr(base, "__annotations__", {}))
            if not hasattr(impl, name) and name not in annotations:
                problems.append(f"{impl.__name__} has no attribute {name!r} of {protocol.__name__}")
            continue
        actual = getattr(impl, name, None)
        if actual is None or not callable(actual):
            problems.append(f"{impl.__name__} has no method {name!r} of {protocol.__name__}")
            continue
        if inspect.iscoroutinefunction(expected) != inspect.iscoroutinefunction(actual):
            problems.append(f"{impl.__name__}.{name}: async differs from {protocol.__name__}")
        want, got = _shape(expected), _shape(actual)
        if want != got:
            problems.append(f"{impl.__name__}.{name}{got} differs from {protocol.__name__}.{name}{want}")
    return problems


def assert_implements(impl: type, protocol: type) -> None:
    problems = mismatches(impl, protocol)
    assert not problems, "; ".join(problems)
