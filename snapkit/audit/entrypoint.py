"""Which globals an entry point needs: the static half of "keep only what you use".

:func:`used_globals` reads a script (without running it) and returns every
module-level name its function can reach at call time. It is a *superset*:
names are followed through other module-level functions, classes and lambdas
the function references, and the names the compiled code objects mention
(``co_names``, which include attribute names) are added as well, so a purge
candidate is never an object the function reads by a plain global lookup.

What it cannot see: names built at run time (``globals()[name]``, ``eval``),
and globals read by *captured objects* themselves (a restored object carries
its own references inside its pickle, so that is not a loss).
"""

from __future__ import annotations

import ast
import builtins
import symtable
import types
from pathlib import Path

from snapkit.errors import NotFoundError, UsageError

__all__ = ["parse_entrypoint", "used_globals"]

_BUILTINS = frozenset(dir(builtins))


def parse_entrypoint(spec: str) -> tuple[Path, str]:
    """Split ``SCRIPT:FUNCTION``; raise UsageError naming a malformed value."""
    script, sep, function = spec.rpartition(":")
    if not sep or not script or not function.isidentifier():
        raise UsageError(
            f"entry point {spec!r} is not SCRIPT:FUNCTION; write it like "
            "score.py:predict"
        )
    return Path(script), function


def used_globals(script_path: str | Path, function: str) -> set[str]:
    """Return the module-level names ``function`` in ``script_path`` may use.

    Builtins are left out unless the script rebinds them. Raises
    :class:`~snapkit.errors.NotFoundError` when the script or the function
    does not exist, and :class:`~snapkit.errors.UsageError` when the script
    does not parse.
    """
    path = Path(script_path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"entry point script {str(path)!r} does not exist; give the path of "
            "the script that defines the function"
        ) from exc
    try:
        tree = ast.parse(source, filename=str(path))
        code = compile(tree, str(path), "exec")
        table = symtable.symtable(source, str(path), "exec")
    except SyntaxError as exc:
        raise UsageError(
            f"entry point script {str(path)!r} does not parse ({exc.msg}, line "
            f"{exc.lineno}); fix it or point --for at another script"
        ) from exc

    definitions = _module_definitions(tree)
    if function not in definitions or not isinstance(
        definitions[function], (ast.FunctionDef, ast.AsyncFunctionDef)
    ):
        known = sorted(
            name
            for name, node in definitions.items()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        )
        raise NotFoundError(
            f"no function {function!r} at module level of {path}; it defines "
            f"{', '.join(known) or 'no functions'}"
        )

    module_names = set(table.get_identifiers())
    code_objects = _code_objects_by_name(code)
    tables = {t.get_name(): t for t in table.get_children()}
    used: set[str] = set()
    pending = [function]
    while pending:
        name = pending.pop()
        if name in used:
            continue
        used.add(name)
        node = definitions.get(name)
        if node is None:
            continue
        found = _names_of(node, tables.get(name), code_objects.get(name))
        pending.extend(n for n in found if n not in used)

    rebound_builtins = module_names & _BUILTINS
    return {n for n in used if n not in _BUILTINS or n in rebound_builtins}


def _module_definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level defs, classes and lambda assignments, by name."""
    out: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value
    return out


def _code_objects_by_name(code: types.CodeType) -> dict[str, types.CodeType]:
    # Top-level code objects of the module are its functions, classes and
    # lambdas; a lambda assigned to a name is found through the ast instead.
    return {c.co_name: c for c in code.co_consts if isinstance(c, types.CodeType)}


def _names_of(
    node: ast.AST, table: symtable.SymbolTable | None, code: types.CodeType | None
) -> set[str]:
    names: set[str] = set()
    if table is not None and not isinstance(node, ast.Lambda):
        names |= _globals_of_table(table)
    else:
        # A lambda has no named symbol table: every name it loads that is not
        # one of its parameters is free or global.
        params = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
        names |= {
            sub.id
            for sub in ast.walk(node)
            if isinstance(sub, ast.Name)
            and isinstance(sub.ctx, ast.Load)
            and sub.id not in params
        }
    if code is not None:
        names |= _co_names(code)
    return names


def _globals_of_table(table: symtable.SymbolTable) -> set[str]:
    names: set[str] = set()
    for sym in table.get_symbols():
        if sym.is_global() or (
            table.get_type() == "class" and sym.is_referenced() and not sym.is_local()
        ):
            names.add(sym.get_name())
    for child in table.get_children():
        names |= _globals_of_table(child)
    return names


def _co_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _co_names(const)
    return names
