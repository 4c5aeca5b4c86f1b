"""Sentence writers behind one interface (see base.SentenceGenerator)."""
from __future__ import annotations

from direction_bank.errors import BankError
from direction_bank.generators.base import SentenceGenerator

GENERATORS = ("template",)


def make_generator(name: str, **options) -> SentenceGenerator:
    """The generator registered under `name`, built with its options."""
    if name == "template":
        from direction_bank.generators.template import TemplateGenerator

        return TemplateGenerator(**options)
    raise BankError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")
