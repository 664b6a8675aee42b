"""The deployment (infra/, azure.yaml, .funcignore, the CI workflow), checked without Azure.

The Bicep compiler cannot be installed here, so every template is parsed with the tree-sitter
Bicep grammar and read through its syntax tree: a literal is evaluated, a name is looked up
among the file's variables (or the values the caller module passes), anything else is unknown.
The app's side comes from its source: the settings `shared/config.py` reads, the table, queue
and container names in `shared/`, the storage services `shared/storage/clients.py` uses, and the
live stream's event handler (its route in `shared/api/stream.py`, the events
`shared/stream/service.py` acts on).
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bicep

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


class _Unknown:
    """A value only Azure knows (a parameter, a resource property, an interpolated string)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()

# Built-in role definition ids (Azure RBAC built-in roles).
BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Web PubSub Service Owner": "12cf5a90-567b-43ae-8102-96cf46c7d9b4",
}
ROLE_NAMES = {guid: name for name, guid in BUILT_IN_ROLES.items()}

STORAGE = "Microsoft.Storage/storageAccounts"
APP_INSIGHTS = "Microsoft.Insights/components"
KEY_VAULT = "Microsoft.KeyVault/vaults"
WEB_PUBSUB = "Microsoft.SignalRService/webPubSub"

# ---------------------------------------------------------------------------------------------
# Reading Bicep through the syntax tree


def syntax_errors(source: bytes) -> list[str]:
    """`line N: ...` for every error or missing node in `source`."""
    found: list[str] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.is_error or node.is_missing:
            kind = "missing " + node.type if node.is_missing else "unexpected"
            text = (node.text or b"").decode(errors="replace").strip().splitlines()
            found.append(f"line {node.start_point[0] + 1}: {kind} {text[0][:40] if text else ''!r}")
            return
        for child in node.children:
            walk(child)

    walk(_PARSER.parse(source).root_node)
    return found


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode()


def _string(node: tree_sitter.Node | None) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node is None or node.type != "string":
        return None
    if any(child.type == "interpolation" for child in node.named_children):
        return None
    return "".join(_text(c) for c in node.named_children if c.type == "string_content")


def _key(prop: tree_sitter.Node) -> str | None:
    first = prop.named_children[0]
    return _text(first) if first.type == "identifier" else _string(first)


def _properties(obj: tree_sitter.Node) -> Iterator[tuple[str, tree_sitter.Node]]:
    """(key, value) of an object literal's properties."""
    for prop in obj.named_children:
        if prop.type != "object_property" or len(prop.named_children) < 2:
            continue
        key = _key(prop)
        if key is not None:
            yield key, prop.named_children[-1]


def get(obj: tree_sitter.Node | None, *path: str) -> tree_sitter.Node | None:
    """The value at `path` in nested object literals (keys compared case-insensitively, as ARM
    does), or None."""
    node = obj
    for key in path:
        if node is None or node.type != "object":
            return None
        node = next((v for k, v in _properties(node) if k.lower() == key.lower()), None)
    return node


@dataclass
class Resource:
    symbol: str
    type: str  # e.g. "Microsoft.Storage/storageAccounts" (no API version)
    body: tree_sitter.Node  # the object literal
    loop: tree_sitter.Node | None  # the for_statement, for `[for x in ...: {...}]`
    existing: bool


@dataclass
class Module:
    symbol: str
    path: Path
    body: tree_sitter.Node


@dataclass
class Bicep:
    path: Path
    root: tree_sitter.Node
    variables: dict[str, tree_sitter.Node] = field(default_factory=dict)
    params: dict[str, tree_sitter.Node] = field(default_factory=dict)  # name -> declaration
    outputs: set[str] = field(default_factory=set)
    resources: list[Resource] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    target_scope: str | None = None
    # Values the calling module passes (evaluated in the caller), for `evaluate`.
    arguments: dict[str, Any] = field(default_factory=dict)

    def resource(self, type_: str, *, existing: bool = False) -> Resource:
        found = [r for r in self.resources if r.type == type_ and r.existing == existing]
        assert len(found) == 1, f"{self.path.name}: expected one {type_}, found {len(found)}"
        return found[0]

    def module(self, relative: str) -> Module:
        found = [m for m in self.modules if m.path == (self.path.parent / relative).resolve()]
        assert len(found) == 1, f"{self.path.name}: expected one module {relative}"
        return found[0]

    def param_has_default(self, name: str) -> bool:
        return len(self.params[name].named_children) > 2

    def param_default(self, name: str) -> Any:
        assert self.param_has_default(name), f"{self.path.name}: {name} has no default"
        return self.evaluate(self.params[name].named_children[-1])

    def allowed(self, name: str) -> list[Any] | None:
        """The values of the parameter's `@allowed([...])`, or None without one."""
        decorators = self.params[name].prev_named_sibling
        if decorators is None or decorators.type != "decorators":
            return None
        for decorator in decorators.named_children:
            call = decorator.named_children[0]
            if call.type == "call_expression" and _text(call.named_children[0]) == "allowed":
                value = self.evaluate(call.named_children[1].named_children[0])
                return value if isinstance(value, list) else None
        return None

    def render(self, node: tree_sitter.Node | None) -> str | None:
        """A string literal with each interpolation the file decides replaced by its value and
        each other one written `{expression}`; None for anything but a string."""
        if node is None or node.type != "string":
            return None
        parts = []
        for child in node.named_children:
            if child.type == "string_content":
                parts.append(_text(child))
            elif child.type == "interpolation":
                value = self.evaluate(child.named_children[0])
                parts.append(
                    value if isinstance(value, str) else f"{{{_text(child.named_children[0])}}}"
                )
        return "".join(parts)

    def evaluate(self, node: tree_sitter.Node | None) -> Any:
        """The value of `node` where the file alone decides it; UNKNOWN parts otherwise."""
        if node is None:
            return UNKNOWN
        kind = node.type
        if kind == "string":
            value = _string(node)
            return UNKNOWN if value is None else value
        if kind == "number":
            return int(_text(node))
        if kind == "boolean":
            return _text(node) == "true"
        if kind == "null":
            return None
        if kind == "array":
            return [self.evaluate(item) for item in node.named_children]
        if kind == "object":
            return {k: self.evaluate(v) for k, v in _properties(node)}
        if kind == "identifier":
            name = _text(node)
            if name in self.variables:
                return self.evaluate(self.variables[name])
            return self.arguments.get(name, UNKNOWN)
        if kind == "member_expression":
            owner = self.evaluate(node.named_children[0])
            member = _text(node.named_children[-1])
            return owner.get(member, UNKNOWN) if isinstance(owner, dict) else UNKNOWN
        if kind == "call_expression":
            return self._call(node)
        return UNKNOWN

    def _call(self, node: tree_sitter.Node) -> Any:
        name = _text(node.named_children[0])
        args = [self.evaluate(a) for a in node.named_children[1].named_children]
        if name == "concat" and args and all(isinstance(a, list) for a in args):
            return [item for a in args for item in a]
        if name == "union" and args and all(isinstance(a, list) for a in args):
            return list(dict.fromkeys(item for a in args for item in a))
        return UNKNOWN

    def literal_keys(self, node: tree_sitter.Node) -> set[str]:
        """Keys certainly present in an object expression: object literals, the variables
        they come from, and every argument of union()."""
        if node.type == "object":
            return {k for k, _ in _properties(node)}
        if node.type == "identifier" and _text(node) in self.variables:
            return self.literal_keys(self.variables[_text(node)])
        if node.type == "call_expression" and _text(node.named_children[0]) == "union":
            return set().union(
                *(self.literal_keys(a) for a in node.named_children[1].named_children)
            )
        return set()


def _read(path: Path, arguments: dict[str, Any] | None = None) -> Bicep:
    root = _PARSER.parse(path.read_bytes()).root_node
    bicep = Bicep(path=path, root=root, arguments=arguments or {})

    def declare(node: tree_sitter.Node) -> None:
        kids = node.named_children
        if node.type == "variable_declaration":
            bicep.variables[_text(kids[0])] = kids[-1]
        elif node.type == "parameter_declaration":
            bicep.params[_text(kids[0])] = node
        elif node.type == "output_declaration":
            bicep.outputs.add(_text(kids[0]))
        elif node.type == "target_scope_assignment":
            bicep.target_scope = _string(kids[0])
        elif node.type == "module_declaration":
            bicep.modules.append(
                Module(_text(kids[0]), (path.parent / (_string(kids[1]) or "")).resolve(), kids[-1])
            )
        elif node.type == "resource_declaration":
            loop = kids[-1] if kids[-1].type == "for_statement" else None
            body = loop.named_children[-1] if loop is not None else kids[-1]
            type_ = (_string(kids[1]) or "").split("@")[0]
            existing = any(c.type == "existing" for c in node.children)
            bicep.resources.append(Resource(_text(kids[0]), type_, body, loop, existing))

    for node in root.named_children:
        declare(node)
    return bicep


@cache
def bicep(relative: str) -> Bicep:
    """An infra/ template, with the values main.bicep passes it where it is a module."""
    path = (INFRA / relative).resolve()
    if relative == "main.bicep":
        return _read(path)
    main = bicep("main.bicep")
    module = next(m for m in main.modules if m.path == path)
    params = get(module.body, "params")
    return _read(path, {k: main.evaluate(v) for k, v in _properties(params)} if params else {})


def _bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


# ---------------------------------------------------------------------------------------------
# The app's side, read from its source


def settings_read_by(source: str) -> set[str]:
    """Every setting name the code reads from `env`: `env.get("X")`, `env["X"]`, and helpers
    called as `helper(env, "X", ...)` (`_text`, `_int`, and any added later)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        literal = None
        if isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            if isinstance(func, ast.Attribute) and func.attr == "get" and _is_env(func.value):
                literal = first
            elif _is_env(first) and len(node.args) > 1:
                literal = node.args[1]
        elif isinstance(node, ast.Subscript) and _is_env(node.value):
            literal = node.slice
        if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
            names.add(literal.value)
    return names


def _is_env(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "env"


def app_settings() -> set[str]:
    return settings_read_by((ROOT / "shared" / "config.py").read_text())


def app_storage_names() -> dict[str, set[str]]:
    """Table, queue and container names: module-level `*_TABLE`/`*_QUEUE`/`*_CONTAINER` string
    constants anywhere in shared/."""
    names: dict[str, set[str]] = {"TABLE": set(), "QUEUE": set(), "CONTAINER": set()}
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            match = re.fullmatch(r"[A-Z0-9_]+_(TABLE|QUEUE|CONTAINER)", getattr(target, "id", ""))
            if match and isinstance(value, ast.Constant) and isinstance(value.value, str):
                names[match.group(1)].add(value.value)
    return names


def storage_services_used() -> set[str]:
    """The storage services `shared/storage/clients.py` makes clients for."""
    packages = {
        "azure.data.tables": "table",
        "azure.storage.queue": "queue",
        "azure.storage.blob": "blob",
    }
    tree = ast.parse((ROOT / "shared" / "storage" / "clients.py").read_text())
    return {
        packages[node.module]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in packages
        if any(alias.name.endswith("Client") for alias in node.names)
    }


def stream_event_handler_route() -> str:
    """The URL path of the app's Web PubSub event handler: the path of the `OPTIONS` operation
    in `shared/api/stream.py` (the abuse-protection check), which must be the `POST` one's too,
    below host.json's routePrefix."""
    routes: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse((ROOT / "shared" / "api" / "stream.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Operation":
            method, path = (a.value if isinstance(a, ast.Constant) else None for a in node.args[:2])
            if isinstance(method, str) and isinstance(path, str):
                routes.add((method, path))
    (path,) = [p for m, p in routes if m == "OPTIONS"]
    assert ("POST", path) in routes, routes
    prefix = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    return "/" + "/".join(part.strip("/") for part in (prefix, path) if part.strip("/"))


def stream_events_handled() -> tuple[set[str], set[str]]:
    """The CloudEvents types `shared/stream/service.py` compares against: (user events,
    system events), without the `azure.webpubsub.user.`/`.sys.` prefix."""
    source = (ROOT / "shared" / "stream" / "service.py").read_text()
    user = set(re.findall(r"azure\.webpubsub\.user\.(\w+)", source))
    system = set(re.findall(r"azure\.webpubsub\.sys\.(\w+)", source))
    return user, system


def default_stream_hub() -> str:
    """`StreamSettings.hub`'s default in shared/config.py."""
    for node in ast.walk(ast.parse((ROOT / "shared" / "config.py").read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "StreamSettings":
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and getattr(item.target, "id", None) == "hub"
                    and isinstance(item.value, ast.Constant)
                ):
                    return str(item.value.value)
    raise AssertionError("shared/config.py: no StreamSettings.hub default")


def vault_secret_name(setting: str) -> str:
    """The rule infra/app/function.bicep applies: QCOS_IBM_TOKEN -> qcos-ibm-token."""
    return setting.lower().replace("_", "-")


def documented_settings() -> dict[str, str]:
    """`docs/deploy.md`, section "Settings": setting -> its "Set by" cell, lower case."""
    text = DEPLOY_DOC.read_text()
    section = re.search(r"^## Settings\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/deploy.md has no '## Settings' section"
    rows: dict[str, str] = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[A-Za-z0-9_]+`", cells[0]):
            name = cells[0].strip("`")
            assert name not in rows, f"docs/deploy.md: {name} has two rows"
            rows[name] = cells[1].strip("`* ").lower()
    return rows


def function_settings() -> tuple[set[str], list[str], list[str]]:
    """From infra/app/function.bicep: the literal app setting names, the secret settings
    always wired, and the optional secret settings."""
    fn = bicep("app/function.bicep")
    settings = fn.resource("Microsoft.Web/sites/config")
    assert fn.evaluate(get(settings.body, "name")) == "appsettings"
    properties = get(settings.body, "properties")
    assert properties is not None
    managed = fn.evaluate(fn.variables["managedSecrets"])
    optional = fn.evaluate(fn.variables["optionalSecrets"])
    return fn.literal_keys(properties), managed, optional


def settings_json() -> dict[str, Any]:
    return json.loads((INFRA / "settings.json").read_text())


# ---------------------------------------------------------------------------------------------
# Syntax


@pytest.mark.parametrize("path", _bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses_without_errors(path: Path) -> None:
    errors = syntax_errors(path.read_bytes())
    assert not errors, f"{path.relative_to(ROOT)} does not parse:\n" + "\n".join(errors)


def test_the_templates_exist() -> None:
    names = {str(p.relative_to(INFRA)) for p in _bicep_files()}
    assert {"main.bicep", "app/function.bicep"} <= names
    assert "core/storage.bicep" in names and "core/roles.bicep" in names
    assert {"core/webpubsub.bicep", "app/webpubsub-hub.bicep"} <= names


def test_the_syntax_check_reports_where_a_template_breaks() -> None:
    good = (INFRA / "core" / "monitor.bicep").read_bytes()
    assert syntax_errors(good) == []
    last_brace = good.rindex(b"}")
    assert syntax_errors(good[:last_brace] + good[last_brace + 1 :]), "an unclosed object passed"
    lines = good.decode().splitlines()
    lines.insert(3, "param = 1")
    errors = syntax_errors("\n".join(lines).encode())
    assert errors and errors[0].startswith("line 4:"), errors


# ---------------------------------------------------------------------------------------------
# azd layout: azure.yaml, main.bicep, main.parameters.json


def test_main_creates_the_resource_group_at_subscription_scope() -> None:
    main = bicep("main.bicep")
    assert main.target_scope == "subscription"
    rg = main.resource("Microsoft.Resources/resourceGroups")
    assert main.modules, "main.bicep deploys nothing"
    for module in main.modules:
        scope = get(module.body, "scope")
        assert scope is not None and _text(scope) == rg.symbol, f"module {module.symbol}: scope"


def test_modules_get_the_parameters_they_declare_and_give_the_outputs_used() -> None:
    main = bicep("main.bicep")
    for module in main.modules:
        assert module.path.is_file(), f"module {module.symbol}: {module.path} is missing"
        target = bicep(str(module.path.relative_to(INFRA)))
        params_node = get(module.body, "params")
        passed = {k for k, _ in _properties(params_node)} if params_node else set()
        assert passed <= set(target.params), (
            f"{module.symbol}: unknown {passed - set(target.params)}"
        )
        required = {p for p in target.params if not target.param_has_default(p)}
        assert required <= passed, f"{module.symbol}: missing {required - passed}"
    symbols = {m.symbol: bicep(str(m.path.relative_to(INFRA))) for m in main.modules}
    used = re.findall(r"\b(\w+)\.outputs\.(\w+)", _text(main.root))
    assert used
    for symbol, output in used:
        assert output in symbols[symbol].outputs, f"{symbol}.outputs.{output} is not declared"


def test_parameters_file_feeds_main_with_azd_environment_values() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text())
    values = {k: v["value"] for k, v in document["parameters"].items()}
    main = bicep("main.bicep")
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert set(values) <= set(main.params), set(values) - set(main.params)
    # With --no-prompt (CI) azd cannot ask: every parameter without a default comes from here.
    required = {p for p in main.params if not main.param_has_default(p)}
    assert required <= set(values), f"no value for {required - set(values)}"
    # Every ${VAR} that is not azd's own is an output azd stores, or documented.
    own = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID"}
    docs = DEPLOY_DOC.read_text()
    for var in re.findall(r"\$\{(\w+)\}", json.dumps(values)):
        assert var in own or var in main.outputs or var in docs, f"{var} comes from nowhere"


def test_admin_key_is_read_back_from_the_secret_the_template_writes() -> None:
    value = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]["adminApiKey"]
    match = re.fullmatch(r"\$\(secretOrRandomPassword \$\{(\w+)\} ([\w-]+)\)", value["value"])
    assert match, value
    vault_var, secret = match.groups()
    assert vault_var in bicep("main.bicep").outputs  # azd stores it after the first provision
    kv = bicep("core/keyvault.bicep")
    written = kv.resource("Microsoft.KeyVault/vaults/secrets")
    assert (
        kv.evaluate(get(written.body, "name")) == secret == vault_secret_name("QCOS_ADMIN_API_KEY")
    )
    assert _text(get(written.body, "properties", "value") or written.body) == "adminApiKey"
    assert "QCOS_ADMIN_API_KEY" in function_settings()[1]


def test_azure_yaml_names_the_python_function_service_deployed_from_the_root() -> None:
    yaml = pytest.importorskip("yaml")
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert project.get("infra", {}).get("path", "infra") == "infra"
    (name, service), *others = project["services"].items()
    assert not others
    assert (service["project"], service["language"], service["host"]) == (".", "python", "function")
    fn = bicep("app/function.bicep")
    tags = get(fn.resource("Microsoft.Web/sites").body, "tags")
    assert tags is not None and re.search(rf"'azd-service-name':\s*'{name}'", _text(tags)), (
        f"the site is not tagged azd-service-name: {name}"
    )


# ---------------------------------------------------------------------------------------------
# The function app


def test_function_app_runs_python_311_on_flex_consumption_as_the_identity() -> None:
    fn = bicep("app/function.bicep")
    plan = fn.evaluate(fn.resource("Microsoft.Web/serverfarms").body)
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = fn.resource("Microsoft.Web/sites").body
    assert fn.evaluate(get(site, "identity", "type")) == "UserAssigned"
    config = get(site, "properties", "functionAppConfig")
    assert fn.evaluate(get(config, "runtime")) == {"name": "python", "version": "3.11"}
    auth = get(config, "deployment", "storage", "authentication")
    assert fn.evaluate(get(auth, "type")) == "UserAssignedIdentity"
    identity = _text(get(auth, "userAssignedIdentityResourceId") or site)
    assert _text(get(site, "properties", "keyVaultReferenceIdentity") or site) == identity
    literal, _, _ = function_settings()
    # Flex Consumption refuses these: the runtime is functionAppConfig.runtime.
    assert not literal & {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"}
    assert {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__clientId"} <= literal


def test_settings_reader_sees_every_way_config_reads_a_setting() -> None:
    source = """
def from_env(env):
    a = env.get("A", "").strip()
    b = _text(env, "B")
    c = _int(env, "C", 5, minimum=1)
    d = _some_future_helper(env, "D")
    e = env["E"]
    other.get("NOT_A_SETTING")
"""
    assert settings_read_by(source) == {"A", "B", "C", "D", "E"}
    read = app_settings()
    assert {"QCOS_ADMIN_API_KEY", "AzureWebJobsStorage__accountName", "QCOS_IBM_TOKEN"} <= read
    assert len(read) > 40


def test_every_setting_the_app_reads_is_set_by_bicep_or_documented() -> None:
    read = app_settings()
    literal, managed, optional = function_settings()
    by_bicep = literal | set(managed)
    rows = documented_settings()
    undocumented = sorted(read - set(rows))
    assert not undocumented, f"add rows to docs/deploy.md's Settings table: {undocumented}"
    problems = []
    for name, set_by in rows.items():
        if name in by_bicep:
            allowed = {"bicep"}
        elif name in optional:
            allowed = {"key vault"}
        else:  # optional, not secret: infra/settings.json, or only ever local
            allowed = {"settings.json", "local only"}
        if name not in read | by_bicep:
            problems.append(f"{name}: neither read by the app nor set by Bicep")
        elif set_by not in allowed:
            problems.append(f"{name}: the table says {set_by!r}, the templates say {allowed}")
    problems += [f"{name}: set by Bicep, not in the table" for name in by_bicep - set(rows)]
    problems += [f"{name}: a secret, not in the table" for name in set(optional) - set(rows)]
    assert not problems, "\n".join(problems)


def test_settings_json_names_only_known_settings_and_no_secret_values() -> None:
    config = settings_json()
    rows = documented_settings()
    _, _, optional = function_settings()
    for name, value in config["appSettings"].items():
        assert rows.get(name) == "settings.json", f"{name} does not belong in appSettings"
        assert isinstance(value, str), f"{name}: app settings are strings"
    unknown = set(config["vaultSecrets"]) - set(optional)
    assert not unknown, f"vaultSecrets: {unknown} are not secret settings"


def test_docs_name_the_vault_secret_of_every_secret_setting() -> None:
    _, managed, optional = function_settings()
    docs = DEPLOY_DOC.read_text()
    fn_source = (INFRA / "app" / "function.bicep").read_text()
    assert "toLower(replace(setting, '_', '-'))" in fn_source  # the rule vault_secret_name copies
    missing = [s for s in managed + optional if f"`{vault_secret_name(s)}`" not in docs]
    assert not missing, f"docs/deploy.md does not name the secrets of {missing}"


# ---------------------------------------------------------------------------------------------
# Storage


def test_storage_creates_the_tables_queues_and_containers_the_app_uses() -> None:
    storage = bicep("core/storage.bicep")
    created: dict[str, set[str]] = {}
    for kind, type_ in {
        "TABLE": "Microsoft.Storage/storageAccounts/tableServices/tables",
        "QUEUE": "Microsoft.Storage/storageAccounts/queueServices/queues",
        "CONTAINER": "Microsoft.Storage/storageAccounts/blobServices/containers",
    }.items():
        resource = storage.resource(type_)
        assert resource.loop is not None, f"{type_}: expected [for name in ...]"
        variable, iterable = resource.loop.named_children[0], resource.loop.named_children[1]
        assert _text(get(resource.body, "name") or resource.body) == _text(variable)
        names = storage.evaluate(iterable)
        assert isinstance(names, list) and UNKNOWN not in names, f"{type_}: {names}"
        created[kind] = set(names)
    app = app_storage_names()
    assert app["TABLE"] and app["QUEUE"] and app["CONTAINER"]
    assert created["TABLE"] == app["TABLE"], (created["TABLE"], app["TABLE"])
    assert created["QUEUE"] == app["QUEUE"], (created["QUEUE"], app["QUEUE"])
    # Plus the container the deployment package goes to: the one the function app reads.
    (package,) = created["CONTAINER"] - app["CONTAINER"]
    assert app["CONTAINER"] <= created["CONTAINER"]
    assert bicep("app/function.bicep").arguments["deploymentContainer"] == package


def test_storage_account_refuses_keys_old_tls_and_public_blobs() -> None:
    storage = bicep("core/storage.bicep")
    properties = storage.evaluate(get(storage.resource(STORAGE).body, "properties"))
    assert properties["allowSharedKeyAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    containers = storage.resource(f"{STORAGE}/blobServices/containers").body
    assert storage.evaluate(get(containers, "properties", "publicAccess")) == "None"


# ---------------------------------------------------------------------------------------------
# Roles


def _role_assignments() -> Iterator[tuple[Bicep, Resource]]:
    for path in _bicep_files():
        file = bicep(str(path.relative_to(INFRA)))
        for resource in file.resources:
            if resource.type == "Microsoft.Authorization/roleAssignments":
                yield file, resource


def test_role_assignments_use_built_in_roles_and_guid_names() -> None:
    found = list(_role_assignments())
    assert len(found) >= 5
    for file, resource in found:
        role = get(resource.body, "properties", "roleDefinitionId")
        assert role is not None and _text(role.named_children[0]) == "subscriptionResourceId"
        guid = file.evaluate(role.named_children[1].named_children[1])
        assert guid in ROLE_NAMES, f"{resource.symbol}: {guid} is not a known built-in role"
        name = get(resource.body, "name")
        assert name is not None and name.type == "call_expression", resource.symbol
        assert _text(name.named_children[0]) == "guid", f"{resource.symbol}: name is not guid()"
        # Scope, principal and role in the name: one assignment each, found again next time.
        args = [_text(a) for a in name.named_children[1].named_children]
        principal = _text(get(resource.body, "properties", "principalId") or name)
        assert principal in args and _text(role.named_children[1].named_children[1]) in args
        scope = _text(get(resource.body, "scope") or name)
        assert any(a.startswith(f"{scope}.") for a in args), f"{resource.symbol}: scope not in name"


def _identity_grants() -> set[tuple[str, str]]:
    """(role name, type of the resource it is granted on) for the app's identity."""
    granted: set[tuple[str, str]] = set()
    for file, resource in _role_assignments():
        if _text(get(resource.body, "properties", "principalId") or resource.body) != (
            "identityPrincipalId"
        ):
            continue
        scope = _text(get(resource.body, "scope") or resource.body)
        scope_type = next(r.type for r in file.resources if r.symbol == scope)
        role = get(resource.body, "properties", "roleDefinitionId")
        assert role is not None
        granted.add(
            (ROLE_NAMES[file.evaluate(role.named_children[1].named_children[1])], scope_type)
        )
    return granted


def test_the_identity_has_a_role_for_every_storage_service_the_app_uses() -> None:
    granted = _identity_grants()
    main = bicep("main.bicep")
    passed = get(main.module("core/roles.bicep").body, "params", "identityPrincipalId")
    identity = main.module("core/identity.bicep").symbol
    assert passed is not None and _text(passed) == f"{identity}.outputs.principalId"

    services = storage_services_used()
    assert services == {"blob", "queue", "table"}, services
    roles_for = {
        "blob": {"Storage Blob Data Owner", "Storage Blob Data Contributor"},
        "queue": {"Storage Queue Data Contributor"},
        "table": {"Storage Table Data Contributor"},
    }
    for service in services:
        assert any((role, STORAGE) in granted for role in roles_for[service]), service
    # The four the issue names (the host's deployment and durable state need Blob Data Owner),
    # and the vault's secrets for the Key Vault references.
    assert {
        ("Storage Blob Data Owner", STORAGE),
        ("Storage Queue Data Contributor", STORAGE),
        ("Storage Table Data Contributor", STORAGE),
        ("Monitoring Metrics Publisher", APP_INSIGHTS),
        ("Key Vault Secrets User", KEY_VAULT),
    } <= granted, granted


# ---------------------------------------------------------------------------------------------
# The live stream: Web PubSub, its hub and the app's event handler


def test_web_pubsub_keeps_its_access_key_and_its_tier_is_a_parameter() -> None:
    wps = bicep("core/webpubsub.bicep")
    service = wps.resource(WEB_PUBSUB).body
    properties = wps.evaluate(get(service, "properties"))
    # The app's connection string carries the AccessKey (shared/config.py requires one) and the
    # event handler checks `ce-signature` with it: local auth must stay on.
    assert properties["disableLocalAuth"] is False
    assert properties["disableAadAuth"] is False  # the identity's role works
    assert properties["publicNetworkAccess"] == "Enabled"  # clients connect from anywhere
    assert _text(get(service, "sku", "name") or service) == "sku"
    main = bicep("main.bicep")
    passed = get(main.module("core/webpubsub.bicep").body, "params", "sku")
    assert passed is not None and _text(passed) == "webPubSubSku"
    allowed = main.allowed("webPubSubSku")
    assert allowed and {"Free_F1", "Standard_S1"} <= set(allowed), allowed
    assert main.param_default("webPubSubSku") in allowed
    # Committed, like the plan's size: the pipeline provisions the same tier as your machine.
    document = json.loads((INFRA / "main.parameters.json").read_text())
    assert "webPubSubSku" not in document["parameters"]


def test_the_hub_sends_client_frames_to_the_apps_event_handler() -> None:
    hub_file = bicep("app/webpubsub-hub.bicep")
    hub = hub_file.resource(f"{WEB_PUBSUB}/hubs").body
    assert _text(get(hub, "parent") or hub) == hub_file.resource(WEB_PUBSUB, existing=True).symbol
    handlers = get(hub, "properties", "eventHandlers")
    assert handlers is not None and handlers.type == "array" and len(handlers.named_children) == 1
    handler = handlers.named_children[0]
    # https://<the app's host><the route of shared/api/stream.py's POST and OPTIONS>
    url = hub_file.render(get(handler, "urlTemplate"))
    assert url == f"https://{{appHostName}}{stream_event_handler_route()}", url
    main = bicep("main.bicep")
    host = get(main.module("app/webpubsub-hub.bicep").body, "params", "appHostName")
    app = main.module("app/function.bicep").symbol
    assert host is not None and _text(host) == f"{app}.outputs.hostName"
    fn = bicep("app/function.bicep")
    assert re.search(
        r"^output hostName string = (\w+)\.properties\.defaultHostName$", _text(fn.root), re.M
    )
    # Events: every user event (a client's frames are `message` events), and the system events
    # the handler acts on, which are none: a blocking `connect` would cost a call per handshake.
    user_events, system_events = stream_events_handled()
    assert user_events == {"message"}, user_events
    pattern = hub_file.evaluate(get(handler, "userEventPattern"))
    assert pattern == "*" or "message" in [p.strip() for p in pattern.split(",")], pattern
    assert set(hub_file.evaluate(get(handler, "systemEvents"))) == system_events
    # In Azure clients connect with negotiate's token: no anonymous connections.
    assert hub_file.evaluate(get(hub, "properties", "anonymousConnectPolicy")) == "deny"


def test_the_app_and_the_hub_share_the_hub_name_which_defaults_to_the_apps() -> None:
    main = bicep("main.bicep")
    hub_name = get(main.module("app/webpubsub-hub.bicep").body, "params", "name")
    app_hub = get(main.module("app/function.bicep").body, "params", "webPubSubHub")
    assert hub_name is not None and app_hub is not None
    assert _text(hub_name) == _text(app_hub) == "webPubSubHubName"
    assert main.param_default("webPubSubHubName") == default_stream_hub()
    literal, _, _ = function_settings()
    assert "QCOS_WEBPUBSUB_HUB" in literal
    settings = get(
        bicep("app/function.bicep").resource("Microsoft.Web/sites/config").body, "properties"
    )
    assert settings is not None and re.search(
        r"\bQCOS_WEBPUBSUB_HUB: webPubSubHub\b", _text(settings)
    )


def test_the_connection_string_reaches_the_app_through_the_vault() -> None:
    setting = "QCOS_WEBPUBSUB_CONNECTION_STRING"
    _, managed, optional = function_settings()
    assert setting in managed and setting not in optional  # a Key Vault reference, always
    assert setting not in settings_json()["appSettings"]
    wps = bicep("core/webpubsub.bicep")
    secret = wps.resource("Microsoft.KeyVault/vaults/secrets")
    assert wps.evaluate(get(secret.body, "name")) == vault_secret_name(setting)
    vault = wps.resource(KEY_VAULT, existing=True)
    assert _text(get(secret.body, "parent") or secret.body) == vault.symbol
    assert _text(get(vault.body, "name") or vault.body) == "keyVaultName"
    value = _text(get(secret.body, "properties", "value") or secret.body)
    service = wps.resource(WEB_PUBSUB).symbol
    assert value == f"{service}.listKeys().primaryConnectionString", value
    # The same vault the app's references name, and the secret exists before the app starts.
    main = bicep("main.bicep")
    vaults = {
        _text(get(main.module(m).body, "params", "keyVaultName") or main.root)
        for m in ("core/webpubsub.bicep", "app/function.bicep")
    }
    assert vaults == {f"{main.module('core/keyvault.bicep').symbol}.outputs.name"}, vaults
    depends = get(main.module("app/function.bicep").body, "dependsOn")
    assert depends is not None
    assert main.module("core/webpubsub.bicep").symbol in {_text(d) for d in depends.named_children}


def test_the_identity_owns_the_web_pubsub_data_plane() -> None:
    assert ("Web PubSub Service Owner", WEB_PUBSUB) in _identity_grants()
    main = bicep("main.bicep")
    passed = get(main.module("core/roles.bicep").body, "params", "webPubSubName")
    assert passed is not None
    assert _text(passed) == f"{main.module('core/webpubsub.bicep').symbol}.outputs.name"


# ---------------------------------------------------------------------------------------------
# Monitoring and the vault


def test_log_analytics_and_application_insights_refuse_local_auth() -> None:
    monitor = bicep("core/monitor.bicep")
    workspace = monitor.resource("Microsoft.OperationalInsights/workspaces").body
    assert monitor.evaluate(get(workspace, "properties", "features", "disableLocalAuth")) is True
    insights = monitor.resource(APP_INSIGHTS).body
    assert monitor.evaluate(get(insights, "properties", "disableLocalAuth")) is True


def test_key_vault_authorizes_with_rbac() -> None:
    kv = bicep("core/keyvault.bicep")
    properties = kv.evaluate(get(kv.resource(KEY_VAULT).body, "properties"))
    assert properties["enableRbacAuthorization"] is True


# ---------------------------------------------------------------------------------------------
# Packaging and CI


def _ignored(patterns: list[str], path: str) -> bool:
    parts = path.split("/")
    return any(
        fnmatch.fnmatch(part, pattern) or fnmatch.fnmatch(path, pattern)
        for pattern in patterns
        for part in parts
    )


def test_funcignore_leaves_out_development_files_and_keeps_the_app() -> None:
    lines = (ROOT / ".funcignore").read_text().splitlines()
    patterns = [line.strip().strip("/") for line in lines if line.strip() and line[0] != "#"]
    for path in (
        ".venv/bin/python",
        "node_modules/azurite/package.json",
        "tests/unit/test_infra.py",
        "bench/rerank_quality.py",
        "tools/funchost/pyproject.toml",
        ".azurite/__azurite_db_table__.json",
        ".qcos/admin-key",
        ".azure/dev/.env",  # azd's environment
        "local.settings.json",
        "docs/deploy.md",
        "infra/main.bicep",
    ):
        assert _ignored(patterns, path), f".funcignore deploys {path}"
    for path in (
        "function_app.py",
        "host.json",
        "requirements.txt",
        "LICENSE",
        "shared/config.py",
        "shared/suppliers/data/devices/ionq.json",
    ):
        assert not _ignored(patterns, path), f".funcignore leaves out {path}"


def test_ci_tests_every_change_and_deploys_main_with_openid_connect() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    jobs = workflow["jobs"]
    test_runs = [step.get("run", "") for step in jobs["test"]["steps"]]
    assert "make test" in test_runs
    versions = {
        step["uses"].split("@")[0]: step.get("with", {})
        for step in jobs["test"]["steps"]
        if "uses" in step
    }
    assert str(versions["actions/setup-python"]["python-version"]) == "3.11"
    assert str(versions["actions/setup-node"]["node-version"]) == "20"

    deploy = jobs["deploy"]
    assert deploy["needs"] == "test"
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    assert any(step.get("uses", "").startswith("Azure/setup-azd@") for step in deploy["steps"])
    script = "\n".join(step.get("run", "") for step in deploy["steps"])
    login = re.search(r"azd auth login[^\n]*(\n[^\n]*)?", script)
    assert login and "--federated-credential-provider github" in login.group(0)
    assert script.index("azd provision --no-prompt") < script.index("azd deploy --no-prompt")
    for name in ("AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID"):
        assert deploy["env"][name] == f"${{{{ vars.{name} }}}}"
