"""The embedded stack: ``keymoment.devstack.Stack`` starts the Tansu broker, PostgreSQL,
an SMTP sink and chosen services (see :mod:`keymoment.devstack.stack`)."""

from __future__ import annotations

from typing import Any

_EXPORTS = ("External", "PortInUse", "Ports", "ServiceSpec", "Stack", "StackError")


def __getattr__(name: str) -> Any:  # imported on first use: keymoment.devstack.ports stays light
    if name in _EXPORTS:
        from keymoment.devstack import stack

        return getattr(stack, name)
    raise AttributeError(f"module 'keymoment.devstack' has no attribute {name!r}")


__all__ = list(_EXPORTS)
