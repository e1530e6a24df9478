"""Read DINO-WM's training checkpoints safely: whole pickled modules, read as inert records.

DINO-WM (and the robust-world-model-planning fork) save ``checkpoints/model_latest.pth``
as ``torch.save`` of a dict of whole modules (``predictor``, ``decoder``,
``action_encoder``, ``proprio_encoder``), their optimisers and the ``epoch``,
with ``hydra.yaml`` beside the run. Unpickling such a file with plain
``torch.load`` imports their code and runs whatever the pickle asks for.

Every pickle this package opens (these checkpoints, DINO-WM's dataset tensors and
``seq_lengths.pkl``) is read by one **allow-list** reader, which decides each global a
pickle names by :func:`classify_global`:

- the exact ``(module, name)`` pairs of :data:`ALLOWED_GLOBALS` (tensor, storage and
  parameter rebuilds, dtypes, devices, ``collections`` containers, a few plain
  ``builtins``, numpy integer and float scalars) are the real objects;
- a class name (a plain identifier in CapWords, no dots) in a module outside
  :data:`UNRECORDED_PACKAGES` (packages known to hold callables that load, execute,
  import or open) becomes a :class:`PickledObject`, an inert record of its
  constructor arguments and state, from which state dicts and hyper-parameters are read;
  within ``torch`` only ``torch.nn`` and ``torch.optim`` classes are recorded;
- everything else is refused with an :class:`UnsafeCheckpointError` naming the file and
  the global.

Every global of a file is checked before anything is unpickled (a static pass over the
pickle's opcodes), and again as it is resolved. Nothing a pickle names is imported, and
nothing outside the allowed pairs is ever called.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
import pickletools
import re
import tarfile
import types
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, ClassVar

import torch

from torchrl_gbp.models.checkpoint import save_checkpoint

from .dinov2 import DinoWMImageEncoder
from .dinowm_model import DinoWMConfig, DinoWMWorldModel


def _numpy_dtype(*args: Any) -> Any:
    """``numpy.dtype`` for the plain numeric dtypes numpy scalars pickle with; object dtypes are refused."""
    import numpy

    dtype = numpy.dtype(*args)
    if dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"only numeric numpy dtypes are read, got {dtype}")
    return dtype


def _numpy_scalar(dtype: Any, data: bytes) -> Any:
    """A numpy bool, integer or float scalar from its dtype and raw bytes (what ``numpy.int64(3)`` pickles as)."""
    import numpy

    if not isinstance(dtype, numpy.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"only numeric numpy scalars are read, got a {type(dtype).__name__} scalar")
    return numpy.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles spell bytes (``latin1`` only: no other codec is looked up)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"only latin1 bytes are read through _codecs.encode, got {encoding!r}")
    return text.encode("latin1")


# The exact (module, name) pairs a pickle may name that are real objects: how tensors, their storages, parameters,
# dtypes, devices, plain containers and numpy scalars are rebuilt. Nothing else a pickle names is ever called.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    **{("builtins", t.__name__): t for t in (set, frozenset, dict, list, tuple, complex, bytearray, slice)},
    ("_codecs", "encode"): _latin1_bytes,  # how protocol-2 pickles spell bytes
    ("torch", "Size"): torch.Size, ("torch", "device"): torch.device, ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    **{("torch._utils", f.__name__): f for f in (
        torch._utils._rebuild_tensor, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
        torch._utils._rebuild_parameter_with_state)},
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    **{("torch", name): getattr(torch, name) for name in dir(torch)
       if isinstance(getattr(torch, name), torch.dtype) or (name.endswith("Storage") and name != "Storage")},
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar, ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}

# Top-level packages known to hold callables that load, execute, import or open (numpy.load, os.system,
# subprocess.Popen, importlib.import_module, pickle.loads, torch.load...): their names never become records.
UNRECORDED_PACKAGES = frozenset({
    "builtins", "__builtin__", "os", "posix", "nt", "posixpath", "ntpath", "sys", "subprocess", "shutil",
    "importlib", "runpy", "code", "codeop", "pickle", "_pickle", "pickletools", "marshal", "copyreg", "copy",
    "ctypes", "_ctypes", "socket", "pty", "multiprocessing", "concurrent", "webbrowser", "io", "_io", "codecs",
    "_codecs", "operator", "functools", "itertools", "types", "inspect", "pydoc", "timeit", "platform", "signal",
    "threading", "_thread", "asyncio", "tempfile", "glob", "zipimport", "zipfile", "tarfile", "gzip", "bz2",
    "lzma", "shelve", "dbm", "sqlite3", "pkgutil", "site", "sysconfig", "urllib", "http", "ftplib", "smtplib",
    "xmlrpc", "pdb", "bdb", "trace", "gc", "cProfile", "profile", "logging", "unittest", "doctest", "ensurepip",
    "venv", "distutils", "setuptools", "pip", "numpy", "pandas", "scipy", "joblib", "dill", "cloudpickle", "yaml",
    "h5py", "safetensors", "torchvision", "jax", "tensorflow", "keras", "IPython", "sympy", "torch",
})

# Within torch, classes of these packages become records (modules, optimisers); every other torch name is refused.
TORCH_RECORDED = ("torch.nn.", "torch.optim.")
# How classes are named: CapWords, maybe behind underscores. Functions (load, system, eval) are not.
CLASS_NAME = re.compile(r"_*[A-Z][A-Za-z0-9_]*")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A pickle names a global this package's reader refuses; nothing from the file was built or executed.

    Example:
        >>> import os, pickle, tempfile
        >>> class Payload:
        ...     def __reduce__(self):
        ...         return os.system, ("echo pwned",)
        >>> path = Path(tempfile.mkdtemp()) / "model.pth"
        >>> torch.save({"predictor": Payload()}, path)
        >>> try:
        ...     read_pickled_checkpoint(path)
        ... except UnsafeCheckpointError as error:
        ...     "os.system" in str(error)
        True
    """


class PickledObject:
    """An inert record of a pickled object whose class was never imported.

    Subclasses are made per pickled class name (:attr:`qualified_name`, e.g.
    ``"models.vit.ViTPredictor"``). Unpickling calls nothing of the original
    class: the record keeps the constructor arguments (:attr:`args`,
    :attr:`kwargs`), the state it was given (:attr:`state`, for a module its
    ``__dict__``) and any items or elements set on it.

    Example:
        >>> Linear = record_class("torch.nn.modules.linear", "Linear")
        >>> layer = Linear.__new__(Linear)
        >>> layer.__setstate__({"_parameters": {"weight": torch.ones(2, 3)}, "_buffers": {}, "_modules": {},
        ...                     "in_features": 3})
        >>> layer, list(layer.state_dict()), layer.hyperparameters()
        (<pickled torch.nn.modules.linear.Linear>, ['weight'], {'in_features': 3})
    """

    qualified_name: ClassVar[str] = "PickledObject"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        obj.items, obj.elements = {}, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        """Record an element (pickles of list subclasses append)."""
        self.elements.append(value)

    def extend(self, values: Any) -> None:
        """Record elements (pickles of list subclasses extend)."""
        self.elements.extend(values)

    def __repr__(self) -> str:
        return f"<pickled {self.qualified_name}>"

    @property
    def attributes(self) -> dict[str, Any]:
        """The recorded instance attributes (the pickled ``__dict__``, slot state merged); ``{}`` when none."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slot state)
            return {**(state[0] or {}), **(state[1] or {})}
        return dict(state) if isinstance(state, dict) else {}

    def hyperparameters(self) -> dict[str, Any]:
        """Public plain attributes (numbers, strings, tuples of them): what the module was built with."""
        plain = (bool, int, float, str, type(None))
        return {k: v for k, v in self.attributes.items() if not k.startswith("_") and k != "training"
                and (isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(x, plain) for x in v)))}

    def submodule(self, path: str) -> PickledObject:
        """The child record at dotted ``path`` (``"transformer.layers.0.0"``); a missing name raises naming it."""
        node = self
        for name in path.split(".") if path else []:
            children = node.attributes.get("_modules") or {}
            if name not in children or children[name] is None:
                raise KeyError(f"{node.qualified_name} has no submodule {name!r} (on the way to {path!r}); it has "
                               f"{sorted(children)}")
            node = children[name]
        return node

    def state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """Parameters and persistent buffers by dotted name, as ``nn.Module.state_dict`` orders them.

        Walks the recorded ``_parameters``, ``_buffers`` (minus
        ``_non_persistent_buffers_set``) and ``_modules``; raises a ``TypeError``
        for a record that is not a module.
        """
        if "_parameters" not in self.attributes:
            raise TypeError(f"{self.qualified_name} is not a pickled torch module (no _parameters in its state)")
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._collect(out, "")
        return out

    def _collect(self, out: OrderedDict, prefix: str) -> None:
        attrs = self.attributes
        for name, value in (attrs.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = value.detach()
        skipped = attrs.get("_non_persistent_buffers_set") or set()
        for name, value in (attrs.get("_buffers") or {}).items():
            if value is not None and name not in skipped:
                out[prefix + name] = value.detach()
        for name, child in (attrs.get("_modules") or {}).items():
            if isinstance(child, PickledObject):
                child._collect(out, f"{prefix}{name}.")


def record_class(module: str, name: str) -> type[PickledObject]:
    """A fresh :class:`PickledObject` subclass standing for the class ``module.name`` (never imported).

    Example:
        >>> record_class("models.vit", "ViTPredictor").qualified_name
        'models.vit.ViTPredictor'
    """
    return type(name, (PickledObject,), {"qualified_name": f"{module}.{name}", "__module__": __name__})


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Python 2 spellings (``__builtin__.set``, protocol <= 2 pickles) and CPython's OS modules as Python 3 names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return {"posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path"}.get(module, module), name


def classify_global(module: str, name: str, source: str = "<pickle>") -> tuple[str, Any]:
    """How the reader resolves the global ``module.name``: ``("allowed", object)``, ``("record", None)`` or an
    :class:`UnsafeCheckpointError` naming ``source`` and the global, saying why.

    Example:
        >>> classify_global("collections", "OrderedDict")[0], classify_global("models.vit", "ViTPredictor")[0]
        ('allowed', 'record')
        >>> classify_global("numpy", "load", "model.pth")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        torchrl_gbp.bridges.dinowm_checkpoint.UnsafeCheckpointError: model.pth: refusing the global numpy.load: ...
    """
    module, name = _normalise(str(module), str(name))
    if (module, name) in ALLOWED_GLOBALS:
        return "allowed", ALLOWED_GLOBALS[(module, name)]
    shown = f"{module}.{name}"
    if not name.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        why = "its name is not a plain identifier (a dotted name reaches into other modules)"
    elif module.split(".")[0] in UNRECORDED_PACKAGES and not module.startswith(TORCH_RECORDED):
        why = (f"its package {module.split('.')[0]!r} holds callables that load, execute, import or open, and a "
               f"file of tensors, modules and plain data never needs it")
    elif not CLASS_NAME.fullmatch(name):
        why = "it is not a class name (CapWords), so it may be a function that loads or runs code"
    else:
        return "record", None
    raise UnsafeCheckpointError(
        f"{source}: refusing the global {shown}: {why}. Only the allowed tensor, storage and container rebuilds "
        f"are real and only class names become inert records; nothing from the file was executed.")


# Opcodes that leave the unpickler's stack as it is (for following STACK_GLOBAL's operands).
_STACK_NEUTRAL = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}


def pickle_globals(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """Every ``(module, name)`` one pickle in ``stream`` names, read from its opcodes without unpickling it.

    A ``STACK_GLOBAL`` whose operands are not plain strings pushed just before it yields
    ``("<computed>", "<computed>")``, and a global from copyreg's extension registry ``("<extension>", code)``
    (both refused by :func:`classify_global`).

    Example:
        >>> list(pickle_globals(io.BytesIO(pickle.dumps(OrderedDict(), protocol=4))))
        [('collections', 'OrderedDict')]
    """
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # the values the last opcodes pushed: a string, or None for anything else
    for opcode, arg, _ in pickletools.genops(stream):
        kind = opcode.name
        if kind in ("GLOBAL", "INST"):
            module, _, name = arg.partition(" ")
            yield module, name
        elif kind == "STACK_GLOBAL":
            operands = pushed[-2:]
            yield tuple(operands) if len(operands) == 2 and all(isinstance(v, str) for v in operands) else (
                "<computed>", "<computed>")
        elif kind in ("EXT1", "EXT2", "EXT4"):  # a global by its number in copyreg's extension registry
            yield "<extension>", str(arg)
        if kind in _STACK_NEUTRAL:
            if kind != "PROTO" and kind != "FRAME":
                memo[len(memo) if kind == "MEMOIZE" else arg] = pushed[-1] if pushed else None
        elif kind in _STRINGS:
            pushed.append(arg)
        elif kind in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        else:
            pushed.append(None)


def _vet(stream: IO[bytes], source: str, count: int = 1) -> None:
    """Check every global of the next ``count`` pickles of ``stream`` (refused: :class:`UnsafeCheckpointError`)."""
    for _ in range(count):
        try:
            for module, name in pickle_globals(stream):
                classify_global(module, name, source)
        except UnsafeCheckpointError:
            raise
        except Exception as error:  # pickletools raises ValueError for truncated or garbled opcodes
            raise ValueError(f"{source} is not a readable pickle (truncated or damaged: {error})") from error


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` resolving globals by :func:`classify_global`: allowed objects, inert records, or a refusal.

    ``source`` names the file in errors.

    Example:
        >>> data = pickle.dumps({"a": {1, 2}}, protocol=2)
        >>> RestrictedUnpickler(io.BytesIO(data)).load()
        {'a': {1, 2}}
    """

    source: ClassVar[str] = "<pickle>"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._records: dict[tuple[str, str], type[PickledObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        """The object a pickle's global names (see :func:`classify_global`)."""
        kind, value = classify_global(module, name, self.source)
        if kind == "allowed":
            return value
        key = _normalise(module, name)
        if key not in self._records:
            self._records[key] = record_class(*key)
        return self._records[key]


def restricted_pickle_module(source: str) -> types.SimpleNamespace:
    """A stand-in for the ``pickle`` module, for ``torch.load(pickle_module=...)``, whose unpickler is restricted.

    ``source`` names the file in errors.

    Example:
        >>> restricted_pickle_module("model.pth").Unpickler.source
        'model.pth'
    """
    unpickler = type("Unpickler", (RestrictedUnpickler,), {"source": source})
    return types.SimpleNamespace(__name__=f"{__name__}.restricted", Unpickler=unpickler,
                                 load=lambda file, **kwargs: unpickler(file, **kwargs).load())


def read_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a plain pickle file (``seq_lengths.pkl`` and other dataset side files) with the allow-list reader.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "seq_lengths.pkl"
        >>> _ = path.write_bytes(pickle.dumps([3, 5]))
        >>> read_pickle(path)
        [3, 5]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle {str(path)!r} does not exist")
    with path.open("rb") as file:
        _vet(file, repr(str(path)))
        file.seek(0)
        try:
            return restricted_pickle_module(repr(str(path))).load(file)
        except UnsafeCheckpointError:
            raise
        except Exception as error:  # truncated, garbled, a record used as something it is not...
            raise ValueError(f"{str(path)!r} cannot be read as a pickle ({type(error).__name__}: {error})") from error


# torch.save's legacy (non-zip) format: magic number, protocol, system info, the object, the storage keys.
LEGACY_PICKLES = 5


def _vet_torch_file(path: Path) -> None:
    """Refuse TorchScript and legacy tar archives, and any ``torch.save`` file naming a refused global."""
    source = repr(str(path))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if any(name == "constants.pkl" or name.endswith("/constants.pkl") or "/code/" in name for name in names):
                raise UnsafeCheckpointError(f"{source} is a TorchScript archive, not a torch.save checkpoint; "
                                            f"loading it would run its code, so it is refused")
            for name in names:
                if name.endswith(".pkl"):
                    with archive.open(name) as member:
                        _vet(io.BytesIO(member.read()), f"{source} ({name})")
        return
    if tarfile.is_tarfile(path):
        raise ValueError(f"{source} is a legacy tar torch file (torch < 0.4); it is not read")
    with path.open("rb") as file:
        _vet(file, source, LEGACY_PICKLES)


def read_pickled_checkpoint(path: str | os.PathLike) -> Any:
    """Unpickle a ``torch.save`` file (zip or legacy format) with the allow-list reader (tensors on the CPU).

    Classes become :class:`PickledObject` records; a file naming a refused global raises
    :class:`UnsafeCheckpointError` naming the file and the global before anything is unpickled,
    and so do TorchScript archives.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "model.pth"
        >>> torch.save({"epoch": 3, "layer": torch.nn.Linear(2, 1)}, path)
        >>> payload = read_pickled_checkpoint(path)
        >>> payload["epoch"], payload["layer"], sorted(payload["layer"].state_dict())
        (3, <pickled torch.nn.modules.linear.Linear>, ['bias', 'weight'])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    _vet_torch_file(path)
    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        raise RuntimeError(f"cannot read {str(path)!r} while TORCH_FORCE_WEIGHTS_ONLY_LOAD is set: torch.load then "
                           "refuses the restricted unpickler this reader uses; unset it for the conversion")
    try:
        with warnings.catch_warnings():  # the legacy format looks for the source of every class: records have none
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code for container")
            return torch.load(path, map_location="cpu", weights_only=False,
                              pickle_module=restricted_pickle_module(repr(str(path))))
    except UnsafeCheckpointError:
        raise
    except Exception as error:  # truncated zip, not a torch file, a record used as something it is not...
        raise ValueError(f"{str(path)!r} cannot be read as a torch.save file (truncated, damaged or another "
                         f"format: {type(error).__name__}: {error})") from error


def read_hydra_config(path: str | os.PathLike) -> dict:
    """The run configuration DINO-WM writes beside a run (``hydra.yaml``, resolved OmegaConf YAML) as a dict.

    Parsed with PyYAML's safe loader (optional extra ``dinowm``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "hydra.yaml"
        >>> _ = path.write_text("num_hist: 3\\npredictor:\\n  depth: 6\\n")
        >>> read_hydra_config(path)
        {'num_hist': 3, 'predictor': {'depth': 6}}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run configuration {str(path)!r} does not exist (DINO-WM writes hydra.yaml in the "
                                f"run folder, beside checkpoints/)")
    try:
        import yaml
    except ImportError as error:
        raise ImportError("reading hydra.yaml needs PyYAML: pip install 'torchrl_gbp[dinowm]'") from error
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{str(path)!r} is not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} must hold a mapping of settings, got {type(data).__name__}")
    return data


# The checkpoint entries a DINO-WM world model is rebuilt from (the decoder and optimisers are not needed).
DINOWM_MODULES = ("predictor", "action_encoder", "proprio_encoder")


class DinoWMRun:
    """A DINO-WM training run read safely: ``hydra.yaml`` and the pickled modules of one checkpoint.

    Args:
        run_dir: the run folder (``hydra.yaml`` and ``checkpoints/``).
        checkpoint: the checkpoint file, relative to ``run_dir``.

    Attributes:
        config: the parsed ``hydra.yaml``.
        entries: the checkpoint's top-level dict (modules as :class:`PickledObject` records).
        checkpoint_path: the file read.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> _ = (run / "hydra.yaml").write_text("num_hist: 1\\n")
        >>> (run / "checkpoints").mkdir()
        >>> layers = {name: torch.nn.Conv1d(2, 3, 1) for name in DINOWM_MODULES}
        >>> torch.save({"epoch": 5, **layers}, run / "checkpoints" / "model_latest.pth")
        >>> loaded = DinoWMRun(run)
        >>> loaded.epoch, loaded.config["num_hist"], sorted(loaded.state_dict("proprio_encoder"))
        (5, 1, ['bias', 'weight'])
    """

    def __init__(self, run_dir: str | os.PathLike, checkpoint: str = "checkpoints/model_latest.pth") -> None:
        run_dir = Path(run_dir)
        self.config = read_hydra_config(run_dir / "hydra.yaml")
        self.checkpoint_path = run_dir / checkpoint
        entries = read_pickled_checkpoint(self.checkpoint_path)
        if not isinstance(entries, dict):
            raise ValueError(f"{str(self.checkpoint_path)!r} holds a {type(entries).__name__}, not DINO-WM's dict "
                             f"of modules")
        missing = [name for name in DINOWM_MODULES if not isinstance(entries.get(name), PickledObject)]
        if missing:
            raise ValueError(f"{str(self.checkpoint_path)!r} lacks the pickled modules {missing} (it has "
                             f"{sorted(map(str, entries))}); a DINO-WM world model needs {list(DINOWM_MODULES)}")
        wrong = {name: entries[name].qualified_name for name in DINOWM_MODULES
                 if "_parameters" not in entries[name].attributes}
        if wrong:
            raise ValueError(f"{str(self.checkpoint_path)!r}: the entries {wrong} are records of the wrong kind: their "
                             f"pickled state has no _parameters, so they are not torch modules saved whole (a class "
                             f"called with arguments, or an object of another kind); a DINO-WM world model needs the "
                             f"pickled modules {list(DINOWM_MODULES)}")
        self.entries = entries

    @property
    def epoch(self) -> int | None:
        """The training epoch the checkpoint was saved at (``None`` when not recorded)."""
        return self.entries.get("epoch")

    def state_dict(self, name: str) -> OrderedDict[str, torch.Tensor]:
        """The state dict of the pickled module ``name`` (``"predictor"``, ``"action_encoder"``...)."""
        if not isinstance(self.entries.get(name), PickledObject):
            raise KeyError(f"{str(self.checkpoint_path)!r} has no pickled module {name!r}; it has "
                           f"{sorted(map(str, self.entries))}")
        return self.entries[name].state_dict()


def _plain(value: Any) -> Any:
    """``value`` when it is a plain number or string (what our checkpoints' ``extra`` holds), else ``None``."""
    return value if isinstance(value, (bool, int, float, str)) else None


def _dropout_rates(module: PickledObject) -> set[float]:
    """The ``p`` of every pickled ``Dropout`` at or below ``module``."""
    rates = set()
    if module.qualified_name.endswith(".Dropout") and "p" in module.hyperparameters():
        rates.add(float(module.hyperparameters()["p"]))
    for child in (module.attributes.get("_modules") or {}).values():
        if isinstance(child, PickledObject):
            rates |= _dropout_rates(child)
    return rates


def pickled_dropout(predictor: PickledObject, source: str = "the predictor") -> dict[str, float]:
    """``{"dropout": p, "emb_dropout": p}`` of a pickled DINO-WM predictor, from its ``Dropout`` layers (the
    transformer's and the embedding's ``dropout``); a rate a predictor does not carry is left out, and
    transformer layers that disagree raise naming the rates.

    Example:
        >>> Dropout = record_class("torch.nn.modules.dropout", "Dropout")
        >>> def layer(p):
        ...     record = Dropout.__new__(Dropout)
        ...     record.__setstate__({"_parameters": {}, "_modules": {}, "p": p})
        ...     return record
        >>> Predictor = record_class("models.vit", "ViTPredictor")
        >>> predictor, transformer = Predictor.__new__(Predictor), Predictor.__new__(Predictor)
        >>> transformer.__setstate__({"_parameters": {}, "_modules": {"a": layer(0.1), "b": layer(0.1)}})
        >>> predictor.__setstate__({"_parameters": {}, "_modules": {"dropout": layer(0.0), "transformer": transformer}})
        >>> pickled_dropout(predictor)
        {'dropout': 0.1, 'emb_dropout': 0.0}
    """
    modules = predictor.attributes.get("_modules") or {}
    rates = {}
    for key, child in (("dropout", modules.get("transformer")), ("emb_dropout", modules.get("dropout"))):
        found = _dropout_rates(child) if isinstance(child, PickledObject) else set()
        if len(found) > 1:
            raise ValueError(f"{source}: the pickled predictor's {key} layers disagree: p in {sorted(found)}")
        if found:
            rates[key] = found.pop()
    return rates


def dinowm_config(run: DinoWMRun, *, rollout: str = "full") -> DinoWMConfig:
    """The :class:`DinoWMConfig` of a run: sizes from its weights, ``num_hist``, ``frameskip`` and repeats from
    ``hydra.yaml``, dropout from ``hydra.yaml`` or else the pickled ``Dropout`` layers (:func:`pickled_dropout`);
    a setting that disagrees with the weights or the pickled modules raises naming both.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import save_checkpoint
        >>> model = DinoWMWorldModel(DinoWMConfig(env_action_dim=2, proprio_in_dim=4, num_patches=4,
        ...                                       visual_dim=8, depth=1, heads=2, dim_head=4, mlp_dim=16))
        >>> run = Path(tempfile.mkdtemp())
        >>> _ = (run / "hydra.yaml").write_text("num_hist: 3\\nframeskip: 5\\npredictor:\\n  heads: 2\\n")
        >>> (run / "checkpoints").mkdir()
        >>> torch.save({"predictor": model.predictor, "action_encoder": model.action_encoder,
        ...             "proprio_encoder": model.proprio_encoder}, run / "checkpoints" / "model_latest.pth")
        >>> config = dinowm_config(DinoWMRun(run))
        >>> config.num_patches, config.visual_dim, config.env_action_dim, config.mlp_dim
        (4, 8, 2, 16)
    """
    settings, source = run.config, run.checkpoint_path

    def setting(key: str, default: Any = None, section: dict | None = None) -> Any:
        value = (settings if section is None else section).get(key, default)
        if value is None:
            raise ValueError(f"hydra.yaml of {str(source)!r} has no {key!r}")
        return value

    def check(name: str, from_weights: int, key: str, section: dict | None = None) -> None:
        configured = (settings if section is None else section).get(key)
        if configured is not None and configured != from_weights:
            raise ValueError(f"{str(source)!r}: hydra.yaml says {key}={configured!r} but the weights have "
                             f"{name}={from_weights}")

    if setting("concat_dim", 1) != 1:
        raise ValueError(f"{str(source)!r} was trained with concat_dim={settings['concat_dim']} (embeddings as extra "
                         f"tokens); only concat_dim=1 (embeddings concatenated onto every token) is supported")
    predictor, entries = run.state_dict("predictor"), run.entries
    encoders = {name: run.state_dict(name)["patch_embed.weight"] for name in ("proprio_encoder", "action_encoder")}
    for name, weight in encoders.items():
        if weight.ndim != 3 or weight.shape[2] != 1:
            raise ValueError(f"{str(source)!r}: {name}.patch_embed must be a kernel-1 Conv1d, got weight "
                             f"{tuple(weight.shape)}")
    (proprio_embed_dim, proprio_in_dim), (action_embed_dim, action_in_dim) = (
        tuple(encoders[name].shape[:2]) for name in ("proprio_encoder", "action_encoder"))
    check("proprio embedding size", proprio_embed_dim, "proprio_emb_dim")
    check("action embedding size", action_embed_dim, "action_emb_dim")
    num_hist, frameskip = setting("num_hist"), setting("frameskip")
    proprio_repeat, action_repeat = setting("num_proprio_repeat", 1), setting("num_action_repeat", 1)
    if action_in_dim % frameskip:
        raise ValueError(f"{str(source)!r}: the action encoder reads {action_in_dim} entries, not a multiple of "
                         f"frameskip={frameskip}")
    _, tokens, width = predictor["pos_embedding"].shape
    if tokens % num_hist:
        raise ValueError(f"{str(source)!r}: pos_embedding has {tokens} tokens, not a multiple of num_hist={num_hist}")
    visual_dim = width - proprio_embed_dim * proprio_repeat - action_embed_dim * action_repeat
    if visual_dim < 1:
        raise ValueError(f"{str(source)!r}: predictor width {width} leaves no visual entries next to the proprio "
                         f"and action slots")
    section = settings.get("predictor") or {}
    depth = 1 + max(int(k.split(".")[2]) for k in predictor if k.startswith("transformer.layers."))
    check("depth", depth, "depth", section)
    heads = entries["predictor"].submodule("transformer.layers.0.0").hyperparameters().get("heads")
    heads = setting("heads", section=section) if heads is None else heads
    check("heads", heads, "heads", section)
    mlp_dim = predictor["transformer.layers.0.1.net.1.weight"].shape[0]
    check("mlp_dim", mlp_dim, "mlp_dim", section)
    rates = pickled_dropout(entries["predictor"], repr(str(source)))
    for key, pickled in rates.items():
        configured = section.get(key)
        if configured is not None and float(configured) != pickled:
            raise ValueError(f"{str(source)!r}: hydra.yaml says predictor.{key}={configured!r} but the pickled "
                             f"predictor's Dropout layers have p={pickled}")
    dropout, emb_dropout = (float(rates.get(key, 0.0) if section.get(key) is None else section[key])
                            for key in ("dropout", "emb_dropout"))
    return DinoWMConfig(
        env_action_dim=action_in_dim // frameskip, proprio_in_dim=proprio_in_dim, frameskip=frameskip,
        num_hist=num_hist, num_patches=tokens // num_hist, visual_dim=visual_dim,
        proprio_embed_dim=proprio_embed_dim, action_embed_dim=action_embed_dim, proprio_repeat=proprio_repeat,
        action_repeat=action_repeat, depth=depth, heads=heads,
        dim_head=predictor["transformer.layers.0.0.to_qkv.weight"].shape[0] // (3 * heads), mlp_dim=mlp_dim,
        dropout=dropout, emb_dropout=emb_dropout, rollout=rollout)


def _model_from_run(run: DinoWMRun, rollout: str, dinov2: str | os.PathLike | None = None,
                    normalization: dict | None = None) -> DinoWMWorldModel:
    config, encoder = dinowm_config(run, rollout=rollout), None
    if dinov2 is not None:
        image_size = int(run.config.get("img_size", 224))
        encoder = DinoWMImageEncoder.from_pretrained(dinov2, image_size=image_size)
        if (encoder.num_tokens, encoder.token_dim) != (config.num_patches, config.visual_dim):
            raise ValueError(f"the DINOv2 in {str(dinov2)!r} gives {encoder.num_tokens} tokens of "
                             f"{encoder.token_dim} at img_size {image_size}, but {str(run.checkpoint_path)!r} "
                             f"reads {config.num_patches} of {config.visual_dim}")
        config = replace(config, encoder="dinov2", dinov2=encoder.config, image_size=image_size)
    model = DinoWMWorldModel(config, image_encoder=encoder)
    for name, module in (("predictor", model.predictor), ("action_encoder", model.action_encoder),
                         ("proprio_encoder", model.proprio_encoder)):
        try:
            module.load_state_dict(run.state_dict(name))
        except RuntimeError as error:
            raise ValueError(f"{str(run.checkpoint_path)!r}: the {name} weights do not fit DINO-WM's layout "
                             f"({error})") from error
    if normalization is not None:
        model.set_normalization(**normalization)
    return model


def dinowm_world_model(run_dir: str | os.PathLike, *, checkpoint: str = "checkpoints/model_latest.pth",
                       rollout: str = "full", dinov2: str | os.PathLike | None = None,
                       normalization: dict | None = None) -> DinoWMWorldModel:
    """A :class:`DinoWMWorldModel` with a DINO-WM run's weights, loaded strictly; the conversion's first half.

    With ``dinov2`` (a local folder of ``Dinov2Model.save_pretrained``, never a download) the model reads
    images through that DINOv2 at the run's ``img_size`` (``encoder="dinov2"``) and carries it; otherwise it
    reads precomputed tokens. Normalisation statistics are not in DINO-WM's checkpoints: pass
    ``normalization`` (the keywords of :meth:`DinoWMWorldModel.set_normalization`, e.g.
    :func:`~torchrl_gbp.bridges.normalization_statistics` of the converted dataset) or set them later.

    Example:
        >>> import tempfile
        >>> model = DinoWMWorldModel(DinoWMConfig(env_action_dim=2, proprio_in_dim=4, num_patches=4, visual_dim=8,
        ...                                       depth=1, heads=2, dim_head=4, mlp_dim=16))
        >>> run = Path(tempfile.mkdtemp())
        >>> _ = (run / "hydra.yaml").write_text("num_hist: 3\\nframeskip: 5\\n")
        >>> (run / "checkpoints").mkdir()
        >>> torch.save({"epoch": 1, "predictor": model.predictor, "action_encoder": model.action_encoder,
        ...             "proprio_encoder": model.proprio_encoder}, run / "checkpoints" / "model_latest.pth")
        >>> loaded = dinowm_world_model(run, rollout="one_frame")
        >>> loaded.config.rollout, torch.equal(loaded.predictor.pos_embedding, model.predictor.pos_embedding)
        ('one_frame', True)
    """
    return _model_from_run(DinoWMRun(run_dir, checkpoint), rollout, dinov2, normalization)


def convert_dinowm_checkpoint(run_dir: str | os.PathLike, out_path: str | os.PathLike, *,
                              checkpoint: str = "checkpoints/model_latest.pth", rollout: str = "full",
                              dinov2: str | os.PathLike | None = None, normalization: dict | None = None) -> Path:
    """Convert a DINO-WM run once to our ``weights_only`` checkpoint (config included); return its path.

    The run is read without running its code (:class:`DinoWMRun`); the
    written file loads with :func:`torchrl_gbp.models.load_checkpoint`, which
    every command uses. Its ``extra`` names the source file, epoch, env and encoder.
    ``dinov2`` and ``normalization``: see :func:`dinowm_world_model`; with ``dinov2`` the checkpoint holds
    the DINOv2 config and weights, so it loads (and reads pixels) with nothing else.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import load_checkpoint
        >>> model = DinoWMWorldModel(DinoWMConfig(env_action_dim=2, proprio_in_dim=4, num_patches=4,
        ...                                       visual_dim=8, depth=1, heads=2, dim_head=4, mlp_dim=16))
        >>> run = Path(tempfile.mkdtemp())
        >>> _ = (run / "hydra.yaml").write_text("num_hist: 3\\nframeskip: 5\\n")
        >>> (run / "checkpoints").mkdir()
        >>> torch.save({"epoch": 9, "predictor": model.predictor, "action_encoder": model.action_encoder,
        ...             "proprio_encoder": model.proprio_encoder}, run / "checkpoints" / "model_latest.pth")
        >>> loaded, extra = load_checkpoint(convert_dinowm_checkpoint(run, run / "converted.pt"))
        >>> type(loaded).__name__, extra["epoch"], torch.equal(loaded.predictor.pos_embedding,
        ...                                                    model.predictor.pos_embedding)
        ('DinoWMWorldModel', 9, True)
    """
    run = DinoWMRun(run_dir, checkpoint)
    extra = {"converted_from": str(run.checkpoint_path), "epoch": _plain(run.epoch),
             "env": _plain((run.config.get("env") or {}).get("name")),
             "encoder": _plain((run.config.get("encoder") or {}).get("name"))}
    save_checkpoint(out_path, _model_from_run(run, rollout, dinov2, normalization), extra=extra)
    return Path(out_path)
