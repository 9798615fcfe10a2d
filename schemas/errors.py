"""The root exception of the project and the contract's own errors."""

from __future__ import annotations

from dataclasses import dataclass


class TouchstreamError(Exception):
    """Root of every error Touchstream raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which field, which rule, and a sentence for a person."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.rule}]"


class ContractViolation(TouchstreamError):
    """A payload is not a valid v1 touchpoint event.

    ``reason`` is a short category (``invalid_json``, ``contract_violation``);
    ``errors`` names every field that broke a rule.
    """

    def __init__(self, reason: str, errors: tuple[FieldError, ...]) -> None:
        self.reason = reason
        self.errors = errors
        super().__init__(f"{reason}: " + "; ".join(str(e) for e in errors))
