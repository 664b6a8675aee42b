"""Index a Python v2 Functions app the way the Python worker does.

The worker imports `function_app.py`, finds the `FunctionApp` object, calls its
`get_functions()` once, and checks every function's parameters against its
bindings. An app the worker would refuse is refused here, with the function named.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import FunctionRegister

from .settings import ConfigError, resolve_setting_refs

TRIGGERS = {
    "httpTrigger",
    "queueTrigger",
    "timerTrigger",
    "orchestrationTrigger",
    "activityTrigger",
}
INPUTS = {"durableClient"}
OUTPUTS = {"http", "queue"}


class FunctionLoadError(ConfigError):
    """The worker would refuse to load this function."""

    def __init__(self, function_name: str, reason: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {reason}")
        self.function_name = function_name


@dataclass(frozen=True)
class Binding:
    """One binding of a function, with `%Name%` values resolved."""

    name: str
    type: str
    direction: str
    settings: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@dataclass
class FunctionSpec:
    """A loaded function: its callable, trigger and the bindings the host serves."""

    name: str
    func: Callable[..., Any]
    trigger: Binding
    inputs: list[Binding] = field(default_factory=list)
    outputs: list[Binding] = field(default_factory=list)
    return_binding: Binding | None = None
    is_async: bool = False
    wants_context: bool = False

    @property
    def trigger_type(self) -> str:
        return self.trigger.type


def import_app(app_dir: Path, script: str = "function_app.py") -> FunctionRegister:
    """Import the app module from `app_dir` and return its FunctionApp object."""
    path = app_dir / script
    if not path.exists():
        raise ConfigError(f"{path} not found: funchost runs Python v2 apps (function_app.py)")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
    if len(apps) != 1:
        raise ConfigError(f"{path} must define exactly one FunctionApp object, found {len(apps)}")
    return apps[0]


def index_app(app: FunctionRegister) -> list[FunctionSpec]:
    """Build and validate the specs of every function (calls get_functions() once)."""
    try:
        functions = app.get_functions()
    except ValueError as exc:  # duplicate names and other indexing errors of the library
        raise ConfigError(str(exc)) from exc
    return [_load_function(f) for f in functions]


def _load_function(function: Any) -> FunctionSpec:
    name = function.get_function_name()
    user_func = function.get_user_function()
    bindings = [_binding(name, json.loads(raw)) for raw in function.get_raw_bindings()]
    triggers = [b for b in bindings if b.type in TRIGGERS or b.type.endswith("Trigger")]
    if len(triggers) != 1:
        raise FunctionLoadError(
            name, f"a function needs exactly one trigger, found {len(triggers)}"
        )
    trigger = triggers[0]
    for b in bindings:
        if b.type not in TRIGGERS | INPUTS | OUTPUTS:
            raise FunctionLoadError(name, f"binding type {b.type!r} is not supported by funchost")
    return_binding = next((b for b in bindings if b.name == "$return"), None)
    bound = {b.name: b for b in bindings if b.name != "$return"}
    if len(bound) + (1 if return_binding else 0) != len(bindings):
        raise FunctionLoadError(name, "two bindings share one name")

    signature = inspect.signature(user_func)
    params = dict(signature.parameters)
    try:
        hints = typing.get_type_hints(user_func)
    except Exception:  # unresolvable string annotations: the worker falls back the same way
        hints = {}
    wants_context = "context" in params and "context" not in bound
    if wants_context:
        params.pop("context")
    missing = set(params) - set(bound)
    if missing:
        raise FunctionLoadError(
            name,
            "the following parameters are declared in Python but not in the bindings: "
            f"{sorted(missing)}",
        )
    unbound = set(bound) - set(params)
    if unbound:
        raise FunctionLoadError(
            name,
            "the following parameters are declared in the bindings but not in Python: "
            f"{sorted(unbound)}",
        )
    outputs: list[Binding] = []
    inputs: list[Binding] = []
    for pname, binding in bound.items():
        is_out = _is_out_annotation(hints.get(pname))
        if binding.direction == "out":
            if not is_out:
                raise FunctionLoadError(
                    name,
                    f'binding {pname} is declared to have the "out" direction, but its '
                    "annotation in Python is not a subclass of azure.functions.Out",
                )
            outputs.append(binding)
        elif is_out:
            raise FunctionLoadError(
                name, f"binding {pname} is declared as func.Out but its direction is not out"
            )
        elif binding is not trigger:
            inputs.append(binding)
    if return_binding is not None and return_binding.direction != "out":
        raise FunctionLoadError(name, "the $return binding must have the out direction")
    return FunctionSpec(
        name=name,
        func=user_func,
        trigger=trigger,
        inputs=inputs,
        outputs=outputs,
        return_binding=return_binding,
        is_async=inspect.iscoroutinefunction(user_func),
        wants_context=wants_context,
    )


def _binding(function_name: str, raw: dict[str, Any]) -> Binding:
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                value = resolve_setting_refs(value)
            except ConfigError as exc:
                raise FunctionLoadError(function_name, str(exc)) from exc
        settings[key] = value
    return Binding(
        name=str(raw["name"]),
        type=str(raw["type"]),
        direction=str(raw.get("direction", "in")).lower(),
        settings=settings,
    )


def _is_out_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return isinstance(origin, type) and issubclass(origin, func.Out)
