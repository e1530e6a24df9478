"""Command-line flags generated from typed, frozen option objects, and the objects built back from them.

A field ``name`` of an option type becomes ``--name`` (underscores as dashes); a field holding an option object
becomes that object's flags under its name (``--budget.max-iterations``), built when one of them is given (or
from its default). Supported field types: ``int``, ``float``, ``str``, ``bool`` (``--flag`` / ``--no-flag``),
``X | None`` (``none`` on the command line is ``None``) and ``tuple[X, ...]`` (several values); a field of
another type (a callable, a module) is left to its default and has no flag. A field's ``metadata["help"]`` is
its help, its default shown beside it.
"""
from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any

from .recipes import apply_profile, field_default

NONE = "none"


def _options_type(annotation: Any) -> type | None:
    """The option (dataclass) type ``annotation`` names, alone or ``| None``; ``None`` for any other type."""
    candidates = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) else [annotation]
    return candidates[0] if len(candidates) == 1 and is_dataclass(candidates[0]) else None


def _scalar(annotation: Any) -> tuple[Callable[[str], Any], bool, bool] | None:
    """(converter of one word, optional: ``none`` allowed, several values) of a flag, or ``None`` when
    ``annotation`` has no command-line form."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            return None
        annotation = args[0]
    several = typing.get_origin(annotation) is tuple
    if several:
        annotation = typing.get_args(annotation)[0]
    if annotation in (int, float, str):
        converter = annotation
    elif annotation is bool and not several:
        converter = bool
    else:
        return None
    if optional:
        def converter(word: str, inner=converter) -> Any:
            return None if word.lower() == NONE else inner(word)
        converter.__name__ = annotation.__name__
    return converter, optional, several


def cli_fields(options: type, prefix: str = "") -> dict[str, tuple[Field, Any]]:
    """Every field of option type ``options`` that has a flag, by dotted path, with its resolved type (nested
    option types expanded).

    Example:
        >>> from torchrl_gbp.planners import SearchBudget
        >>> sorted(cli_fields(SearchBudget))  # its clock (a callable) has no flag
        ['max_seconds', 'patience', 'tolerance']
    """
    hints = typing.get_type_hints(options)
    out: dict[str, tuple[Field, Any]] = {}
    for spec in fields(options):
        nested = _options_type(hints[spec.name])
        if nested is not None:
            out.update(cli_fields(nested, f"{prefix}{spec.name}."))
        elif _scalar(hints[spec.name]) is not None:
            out[f"{prefix}{spec.name}"] = (spec, hints[spec.name])
        elif field_default(spec) is MISSING:
            raise TypeError(f"{options.__name__}.{spec.name}: no command-line form for {hints[spec.name]} and no "
                            f"default")
    return out


def add_flags(parser: argparse.ArgumentParser, options: type, *, prefix: str = "", dest_prefix: str = "",
              defaults: Any = None, default_label: str = "default") -> None:
    """Add a flag ``--<prefix><path>`` to ``parser`` for every field of ``options`` (:func:`cli_fields`); flags
    keep ``argparse.SUPPRESS`` as default, so only those given appear in the parsed namespace, under
    ``dest_prefix + path``. ``defaults``: an instance whose values the help shows (default: the fields' own),
    labelled ``default_label``.

    Example:
        >>> from torchrl_gbp.planners import SearchBudget
        >>> parser = argparse.ArgumentParser()
        >>> add_flags(parser, SearchBudget, prefix="budget.", dest_prefix="budget.")
        >>> given(parser.parse_args(["--budget.patience", "5"]), "budget.")
        {'patience': 5}
    """
    for path, (spec, annotation) in cli_fields(options).items():
        converter, optional, several = _scalar(annotation)
        default = _value_at(defaults, path) if defaults is not None else field_default(spec)
        required = default is MISSING and "." not in path  # a nested object's own fields: checked by build
        words = spec.metadata.get("help", "")
        parent = path.rpartition(".")[0]
        shown = (f"{default_label}: {_show(default)}" if default is not MISSING
                 else f"required with any --{parent}.* flag" if parent else "required")
        kwargs: dict[str, Any] = {"dest": dest_prefix + path, "default": argparse.SUPPRESS,
                                  "help": f"{words} ({shown})" if words else f"({shown})"}
        flag = "--" + (prefix + path).replace("_", "-")
        if converter is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = spec.metadata.get("choices")
        parser.add_argument(flag, type=converter, nargs="*" if several else None, required=required,
                            metavar=(f"{{{','.join(choices)}}}" if choices else _annotation_name(annotation))
                            + (f"|{NONE}" if optional else ""),
                            **({"choices": list(choices) + ([None] if optional else [])} if choices else {}),
                            **kwargs)


def _annotation_name(annotation: Any) -> str:
    """A short upper-case name of a flag's value type (``INT``, ``FLOAT``, ``STR``)."""
    inner = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if typing.get_origin(inner[0]) is tuple:
        inner = typing.get_args(inner[0])
    return getattr(inner[0], "__name__", "VALUE").upper()


def _value_at(options: Any, path: str) -> Any:
    for part in path.split("."):
        options = getattr(options, part, MISSING)
    return options


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) or "(none)"
    return NONE if value is None else str(value)


def given(namespace: argparse.Namespace, dest_prefix: str) -> dict[str, Any]:
    """The flags given on the command line whose destination starts with ``dest_prefix``, by dotted path (the
    prefix removed; several values as a tuple).

    Example:
        >>> given(argparse.Namespace(**{"recipe.evaluation.seeds": [0, 1], "command.task": "wall"}), "recipe.")
        {'evaluation.seeds': (0, 1)}
    """
    return {key[len(dest_prefix):]: (tuple(value) if isinstance(value, list) else value)
            for key, value in vars(namespace).items() if key.startswith(dest_prefix)}


def build(options: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of option type ``options`` from dotted-path ``values`` (:func:`given`): nested option fields
    built from their own values on top of their default (a ``None`` default stays ``None`` unless one of its
    flags is given; then its required fields must be too).

    Example:
        >>> from torchrl_gbp.experiments.protocol import MPCBudget
        >>> build(MPCBudget, {"unit": "mpc_iterations", "max_iterations": 10}).label()
        'mpc_iterations:cap=10'
    """
    hints = typing.get_type_hints(options)
    arguments: dict[str, Any] = {}
    for spec in fields(options):
        nested = _options_type(hints[spec.name])
        if nested is None:
            if spec.name in values:
                arguments[spec.name] = values[spec.name]
            continue
        inner = {key[len(spec.name) + 1:]: value for key, value in values.items()
                 if key.startswith(spec.name + ".")}
        default = field_default(spec)
        if not inner:
            continue
        if default is None or default is MISSING:
            missing = [name for name, (field_spec, _) in cli_fields(nested).items()
                       if field_default(field_spec) is MISSING and name not in inner]
            if missing:
                raise ValueError(f"--{prefix}{spec.name}.* flags were given without "
                                 + ", ".join(f"--{prefix}{spec.name}.{name.replace('_', '-')}" for name in missing))
            arguments[spec.name] = build(nested, inner, f"{prefix}{spec.name}.")
        else:
            arguments[spec.name] = apply_profile(default, inner, "flags")  # the given fields on the default object
    return options(**arguments)
