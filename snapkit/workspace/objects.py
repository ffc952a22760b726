"""Objects: named values of a namespace, pickled for a snapshot and loaded back.

An object travels as a cloudpickle stream (protocol 5) plus its out-of-band
buffers. Large numpy arrays and pandas frames hand their memory to the
``buffer_callback``; we keep a ``memoryview`` into that memory, never a copy,
so the caller can hash and chunk the array where it lies.

What travels by reference and what by value:

* classes and functions of installed modules (under site-packages,
  dist-packages or the standard library) travel by reference, as
  ``module:qualname``; the loading interpreter must have those libraries;
* those defined in ``__main__`` or in a local module (a ``.py`` file of the
  user's, not installed) travel by value, so a snapshot does not depend on
  the user's scripts being importable where it is loaded.

Pickles are code: :func:`load_object` runs whatever the stream says. Before
loading, :func:`scan_imports` lists every global a stream refers to by reading
its opcodes, without unpickling anything. Load only trusted snapshots.

Non-goals: pickling live resources (locks, sockets, open files, generators).
:func:`pickle_object` says which part of a value is to blame and what to do.
"""

from __future__ import annotations

import builtins
import contextlib
import copyreg
import difflib
import functools
import io
import logging
import os
import pickle
import pickletools
import site
import sys
import sysconfig
import threading
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cloudpickle

from snapkit.errors import FormatError, ObjectError, UsageError
from snapkit.workspace.manifest import SkippedObject

__all__ = [
    "PROTOCOL",
    "PickledObject",
    "capture_objects",
    "is_local_module",
    "load_object",
    "pickle_object",
    "scan_imports",
    "select",
    "top_modules",
]

log = logging.getLogger(__name__)

PROTOCOL = 5

#: Names an IPython shell puts in the user namespace (besides ``_``-names).
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})

#: Modules that are part of the tool, never the user's state to carry by value.
_NEVER_BY_VALUE = frozenset({"snapkit", "cloudpickle"})

#: How hard the search for the unpicklable part of a value tries.
_SEARCH_DEPTH = 6
_SEARCH_NODES = 10_000

#: Passes of pickle_object: each may discover more local modules to inline.
_MAX_PASSES = 8

#: The cloudpickle registry of by-value modules is process-wide.
_registry_lock = threading.Lock()


@dataclass
class PickledObject:
    """One object, pickled: the stream, its out-of-band buffers, what it needs.

    ``buffers`` are one-dimensional, format ``'B'`` views into the memory of
    the original value (a numpy array's data, for instance). They stay valid
    only while that value is alive and unchanged: chunk and hash them before
    the namespace moves on.
    """

    name: str
    type: str
    stream: bytes
    buffers: list[memoryview] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: ``module:qualname`` of every global the stream references, sorted.
    imports: list[str] = field(default_factory=list)

    @property
    def raw_size(self) -> int:
        return len(self.stream) + sum(b.nbytes for b in self.buffers)


# -- choosing what to capture -----------------------------------------------


def select(
    namespace: Mapping[str, Any],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the objects of ``namespace`` worth capturing, by sorted name.

    Without ``include``, every user variable is kept and the rest pruned:
    modules, ``_``-names, IPython's own names, builtins, and classes or
    functions imported from installed modules (they are code, not state).
    Those defined in ``__main__`` or in a local module are kept.

    With ``include``, exactly those names are taken, pruned or not; a name
    that is not in the namespace raises :class:`~snapkit.errors.UsageError`
    with the closest names. ``exclude`` always wins.
    """
    skip = set(exclude)
    if include is None:
        chosen = {
            name: value
            for name, value in namespace.items()
            if name not in skip and _is_user_state(name, value)
        }
        return dict(sorted(chosen.items()))

    chosen = {}
    for name in include:
        if name not in namespace:
            raise UsageError(_absent_message(name, namespace))
        if name not in skip:
            chosen[name] = namespace[name]
    return dict(sorted(chosen.items()))


def _absent_message(name: str, namespace: Mapping[str, Any]) -> str:
    candidates = [n for n in namespace if not n.startswith("_")]
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "check the spelling"
    return (
        f"object {name!r} is not in the namespace; {hint} "
        "(list the names to keep with include=[...] / --keep)"
    )


def _is_user_state(name: str, value: Any) -> bool:
    if name.startswith("_") or name in _IPYTHON_NAMES:
        return False
    if isinstance(value, types.ModuleType):
        return False
    if getattr(builtins, name, _ABSENT) is value:
        return False
    return not _is_installed_global(value)


_ABSENT = object()


def _is_installed_global(value: Any) -> bool:
    """Is ``value`` a module-level name of an installed module (imported code)?"""
    try:
        module_name = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None) or getattr(
            value, "__name__", None
        )
    except Exception:  # a hostile __getattr__ is not our business
        return False
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return False
    module = sys.modules.get(module_name)
    if module is None or module_name == "__main__" or is_local_module(module):
        return False

    found: Any = module
    for part in qualname.split("."):
        try:
            found = getattr(found, part)
        except Exception:
            return False
    return found is value


# -- local versus installed modules -----------------------------------------


@functools.lru_cache(maxsize=1)
def _install_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            roots.add(paths[key])
    with contextlib.suppress(AttributeError):
        roots.update(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        roots.add(site.getusersitepackages())
    return tuple(
        os.path.join(os.path.realpath(r), "") for r in roots if r and os.path.isdir(r)
    )


@functools.lru_cache(maxsize=4096)
def _is_installed_path(path: str) -> bool:
    real = os.path.realpath(path)
    parts = set(real.split(os.sep))
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return any(real.startswith(root) for root in _install_roots())


def is_local_module(module: types.ModuleType) -> bool:
    """True for ``__main__`` and modules loaded from a file that is not installed.

    Built-in and frozen modules (no file) count as installed. snapkit and
    cloudpickle never count as local, even from an editable checkout.
    """
    name = module.__name__
    if name == "__main__":
        return True
    if name.partition(".")[0] in _NEVER_BY_VALUE:
        return False
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return False
    return not _is_installed_path(path)


# -- pickling ------------------------------------------------------------------


def pickle_object(name: str, value: Any) -> PickledObject:
    """Pickle ``value`` with cloudpickle, protocol 5, data buffers out of band.

    Classes and functions of local modules are pickled by value (see the
    module docstring). Raises :class:`~snapkit.errors.ObjectError` naming the
    variable and, when found, the path to the part that cannot be pickled.
    """
    try:
        return _dump(name, value)
    except _Unpicklable as exc:
        error = ObjectError(_unpicklable_message(name, exc.path, exc.reason))
        #: What a manifest records for a skipped object: no advice, just why.
        error.reason = f"{exc.path}: {exc.reason}"
        raise error from exc.__cause__


class _Unpicklable(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _dump(name: str, value: Any) -> PickledObject:
    # Each pass may find classes or functions of local modules in the stream;
    # the next pass inlines those modules too.
    by_value: set[str] = set()
    for _ in range(_MAX_PASSES):
        buffers: list[memoryview] = []
        try:
            with _registry_lock, _pickled_by_value(by_value):
                stream = cloudpickle.dumps(
                    value, protocol=PROTOCOL, buffer_callback=_collector(buffers)
                )
        except Exception as exc:
            path, reason = locate_unpicklable(name, value, exc)
            raise _Unpicklable(path, reason) from exc

        imports = scan_imports(stream, name)
        local = {
            module
            for module in _modules_of(imports)
            if module not in by_value and _is_local_name(module)
        }
        if not local:
            break
        by_value |= local
    else:  # pragma: no cover - needs a chain of more than 8 local modules
        log.warning(
            "object %s: still refers to local modules after %d passes",
            name,
            _MAX_PASSES,
        )

    kind = type(value)
    log.debug(
        "pickled object %s: %d bytes in band, %d buffers",
        name,
        len(stream),
        len(buffers),
    )
    return PickledObject(
        name=name,
        type=f"{kind.__module__}.{kind.__qualname__}",
        stream=stream,
        buffers=buffers,
        summary=summarize(value),
        imports=imports,
    )


def _collector(buffers: list[memoryview]) -> Any:
    def collect(buf: pickle.PickleBuffer) -> bool:
        try:
            view = buf.raw()
        except BufferError:
            return True  # not contiguous: let pickle copy it in band
        buffers.append(view)
        return False

    return collect


def _discard(buf: pickle.PickleBuffer) -> bool:
    return False


def _modules_of(imports: Iterable[str]) -> set[str]:
    return {entry.partition(":")[0] for entry in imports}


def _is_local_name(module_name: str) -> bool:
    if module_name == "__main__":
        return False  # cloudpickle already inlines __main__
    module = sys.modules.get(module_name)
    return module is not None and is_local_module(module)


@contextlib.contextmanager
def _pickled_by_value(module_names: Iterable[str]) -> Iterator[None]:
    """Register modules for pickling by value; undo only what we registered."""
    already = set(cloudpickle.list_registry_pickle_by_value())
    added: list[types.ModuleType] = []
    try:
        for module_name in sorted(module_names):
            module = sys.modules.get(module_name)
            if module is None or module_name in already:
                continue
            cloudpickle.register_pickle_by_value(module)
            added.append(module)
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


def summarize(value: Any) -> dict[str, Any]:
    """Return a short, msgpack-friendly description of ``value`` for show/diff."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return {
            "shape": [int(n) for n in value.shape],
            "dtype": str(value.dtype),
            "nbytes": int(value.nbytes),
        }
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.DataFrame):
        dtypes: dict[str, int] = {}
        for dtype in value.dtypes:
            dtypes[str(dtype)] = dtypes.get(str(dtype), 0) + 1
        return {
            "shape": [int(n) for n in value.shape],
            "columns": [str(c) for c in list(value.columns[:200])],
            "dtypes": dict(sorted(dtypes.items())),
        }
    if pd is not None and isinstance(value, pd.Series):
        return {"length": len(value), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return {"length": len(value)}
    return {}


# -- finding what will not pickle ---------------------------------------------


def locate_unpicklable(name: str, value: Any, error: BaseException) -> tuple[str, str]:
    """Return ``(path, reason)`` for the part of ``value`` that fails to pickle.

    A bounded search (depth, node count, cycle-safe): pickle each child of the
    current node, descend into the first that fails. The path reads like
    Python, e.g. ``model.callbacks[2]``; ``reason`` is that part's error.
    """
    path, reason = name, _reason(error)
    node, seen, visited = value, {id(value)}, 0
    for _ in range(_SEARCH_DEPTH):
        culprit = None
        for label, child in _children(node):
            if id(child) in seen:
                continue
            seen.add(id(child))
            visited += 1
            if visited > _SEARCH_NODES:
                return path, reason
            failure = _pickle_failure(child)
            if failure is not None:
                culprit = (label, child, failure)
                break
        if culprit is None:
            break
        label, node, failure = culprit
        path, reason = path + label, _reason(failure)
    return path, reason


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _pickle_failure(value: Any) -> BaseException | None:
    try:
        cloudpickle.dumps(value, protocol=PROTOCOL, buffer_callback=_discard)
    except Exception as exc:
        return exc
    return None


def _short(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _children(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in list(value.items()):
            yield f"[{_short(key)}]", item
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield f"[{i}]", item
        return
    if isinstance(value, (set, frozenset)):
        for i, item in enumerate(list(value)):
            yield f"{{item {i}}}", item
        return
    if isinstance(value, types.FunctionType):
        yield from _function_children(value)
    yield from _attribute_children(value)


def _function_children(func: types.FunctionType) -> Iterator[tuple[str, Any]]:
    cells = func.__closure__ or ()
    for var, cell in zip(func.__code__.co_freevars, cells, strict=False):
        with contextlib.suppress(ValueError):  # an empty cell
            yield f".<closure {var}>", cell.cell_contents
    for var in func.__code__.co_names:
        if var in func.__globals__:
            yield f".<global {var}>", func.__globals__[var]


def _attribute_children(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, (type, types.ModuleType)):
        return
    try:
        attrs = vars(value)
    except TypeError:
        attrs = {}
    if isinstance(attrs, dict):
        for key, item in list(attrs.items()):
            yield f".{key}", item
    for klass in type(value).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in [slots] if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            try:
                item = getattr(value, slot)
            except Exception:
                continue
            yield f".{slot}", item


def _unpicklable_message(name: str, path: str, reason: str) -> str:
    return (
        f"cannot pickle object {name!r}: {path}: {reason}. Leave it out with "
        f"exclude=[{name!r}] (CLI: --exclude-object {name}), or capture the "
        'other objects without it with on_unpicklable="skip" (CLI: '
        "--skip-unpicklable)"
    )


def capture_objects(
    values: dict[str, Any], on_unpicklable: Literal["raise", "skip"] = "raise"
) -> tuple[list[PickledObject], list[SkippedObject]]:
    """Pickle every value; skip (with a WARNING) or raise on unpicklable ones."""
    if on_unpicklable not in ("raise", "skip"):
        raise UsageError(f"on_unpicklable is {on_unpicklable!r}; use 'raise' or 'skip'")
    pickled: list[PickledObject] = []
    skipped: list[SkippedObject] = []
    for name, value in values.items():
        try:
            pickled.append(_dump(name, value))
        except _Unpicklable as exc:
            if on_unpicklable == "raise":
                message = _unpicklable_message(name, exc.path, exc.reason)
                raise ObjectError(message) from exc.__cause__
            skipped.append(SkippedObject(name, f"{exc.path}: {exc.reason}"))
            log.warning("skipped object %s: %s: %s", name, exc.path, exc.reason)
    return pickled, skipped


# -- reading a stream without running it -----------------------------------


class _Global:
    """A global pushed by GLOBAL or STACK_GLOBAL, in the emulated stack."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


_MARK = object()

_STRING_OPS = frozenset(
    {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    }
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})
#: cloudpickle's function that imports a module by name at load time.
_SUBIMPORTS = frozenset({"subimport"})


def scan_imports(
    stream: bytes | bytearray | memoryview, name: str = "pickle"
) -> list[str]:
    """Return the sorted ``module:qualname`` globals ``stream`` refers to.

    Reads opcodes only (:func:`pickletools.genops`) and emulates the stack,
    so nothing is imported or called. Modules that cloudpickle imports by
    name appear as ``module:<module>``. Time and memory are linear in the
    stream. A stream that is malformed, or takes a global's name from a value
    computed at load time, raises :class:`~snapkit.errors.FormatError`.
    """
    try:
        found = _scan(bytes(stream))
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(_malformed(name, str(exc))) from exc
    return sorted(found)


def _malformed(name: str, why: str) -> str:
    return (
        f"object {name!r}: the pickle stream is malformed ({why}); the snapshot "
        "is damaged or was not written by snapkit. Run `snapkit verify` on it"
    )


def _scan(data: bytes) -> set[str]:
    found: set[str] = set()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    saw_stop = False

    for opcode, arg, pos in pickletools.genops(io.BytesIO(data)):
        op = opcode.name
        before, after = opcode.stack_before, opcode.stack_after
        popped = _pop(stack, before, op, pos)
        pushed: Any = None

        if op in _STRING_OPS and isinstance(arg, str):
            pushed = arg
        elif op in ("GLOBAL", "INST"):
            module, _, qualname = str(arg).partition(" ")
            pushed = _Global(module, qualname)
            found.add(f"{module}:{qualname}")
        elif op == "STACK_GLOBAL":
            module, qualname = popped
            if not (isinstance(module, str) and isinstance(qualname, str)):
                raise ValueError(f"STACK_GLOBAL at byte {pos} has a computed name")
            pushed = _Global(module, qualname)
            found.add(f"{module}:{qualname}")
        elif op in _EXT_OPS:
            key = copyreg._inverted_registry.get(arg)  # type: ignore[attr-defined]
            if key is None:
                raise ValueError(f"unregistered extension code {arg}")
            pushed = _Global(*key)
            found.add(f"{key[0]}:{key[1]}")
        elif op == "TUPLE1":
            pushed = tuple(popped)
        elif op == "REDUCE":
            _note_subimport(popped, found)
        elif op == "MEMOIZE" or op in _PUT_OPS:
            # These store the top of the stack and leave it in place.
            pushed = popped[-1] if popped else stack[-1] if stack else _MARK
            if pushed is _MARK:
                raise ValueError(f"{op} at byte {pos} has no value to store")
            memo[len(memo) if op == "MEMOIZE" else int(str(arg))] = pushed
        elif op in _GET_OPS:
            if arg not in memo:
                raise ValueError(f"{op} at byte {pos} reads unset memo {arg}")
            pushed = memo[arg]
        elif op == "STOP":
            saw_stop = True

        for item in after:
            stack.append(_MARK if item is pickletools.markobject else pushed)
    if not saw_stop:
        raise ValueError("no STOP opcode")
    return found


def _pop(stack: list[Any], before: list[Any], op: str, pos: int | None) -> list[Any]:
    """Apply an opcode's pops to the emulated stack; return what it popped."""
    if pickletools.markobject in before or (
        op == "POP" and stack and stack[-1] is _MARK
    ):
        if _MARK not in stack:
            raise ValueError(f"{op} at byte {pos} without a MARK")
        while stack.pop() is not _MARK:
            pass
        count = (
            before.index(pickletools.markobject)
            if pickletools.markobject in before
            else 0
        )
    else:
        count = len(before)
    if len(stack) < count:
        raise ValueError(f"{op} at byte {pos} pops an empty stack")
    popped = stack[len(stack) - count :]
    del stack[len(stack) - count :]
    return popped


def _note_subimport(popped: list[Any], found: set[str]) -> None:
    func, args = popped
    if (
        isinstance(func, _Global)
        and func.module.startswith("cloudpickle")
        and func.name in _SUBIMPORTS
        and isinstance(args, tuple)
        and args
        and isinstance(args[0], str)
    ):
        found.add(f"{args[0]}:<module>")


def top_modules(imports: Iterable[str]) -> list[str]:
    """Return the sorted top-level module names of ``module:qualname`` entries."""
    return sorted({e.partition(":")[0].partition(".")[0] for e in imports} - {""})


# -- loading -------------------------------------------------------------------


def load_object(
    name: str,
    stream: bytes | bytearray | memoryview,
    buffers: Sequence[bytes | bytearray | memoryview],
) -> Any:
    """Unpickle one object. This RUNS CODE from the stream: trusted input only.

    Writable buffers (``bytearray``, writable views) give writable arrays;
    ``bytes`` give read-only ones. Any failure raises
    :class:`~snapkit.errors.ObjectError` naming the object and what to install.
    """
    try:
        return pickle.loads(stream, buffers=buffers)
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        raise ObjectError(
            f"cannot load object {name!r}: module {missing!r} is not installed. "
            "List the libraries the snapshot needs with `snapkit requirements "
            "SNAP > requirements.txt` and install them with "
            "`pip install -r requirements.txt`"
        ) from exc
    except Exception as exc:
        raise ObjectError(
            f"cannot load object {name!r}: {type(exc).__name__}: {_reason(exc)}. "
            "It was probably pickled with other library versions; compare them "
            "with `snapkit requirements SNAP` and install those with "
            "`pip install -r`"
        ) from exc
