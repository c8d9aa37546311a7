"""Model versions on disk, loaded and unloaded as TensorFlow Serving's version policies say.

Each model's ``base_path`` holds numbered version folders (SavedModels). A poller looks every
``poll_seconds``; a new version that the policy wants is loaded, warmed up (warmup.py) and becomes
AVAILABLE before an older one is unloaded, so requests for the latest version never see a gap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2

from emotune_common.logs import get_logger
from emotune_modelserver import metrics
from emotune_modelserver.batching import BatchScheduler
from emotune_modelserver.config import BatchingConfig, ModelConfig, load_model_config
from emotune_modelserver.tensors import InvalidInput
from emotune_modelserver.warmup import replay_warmup

log = get_logger("emotune.modelserver")
DEFAULT_SIGNATURE = "serving_default"
State = get_model_status_pb2.ModelVersionStatus.State


class NotFound(LookupError):
    """No such model, version or label (NOT_FOUND)."""


@dataclass
class Servable:
    """One loaded version of a model."""

    name: str
    version: int
    path: Path
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    functions: dict
    loaded: object = None  # the loaded SavedModel: keeps the functions' variables alive
    schedulers: dict[str, BatchScheduler] = field(default_factory=dict)

    def signature(self, name: str, method: str | None = None) -> meta_graph_pb2.SignatureDef:
        """The SignatureDef a request names ("": the default one); NotFound without it, InvalidInput when
        ``method`` is given and the signature's is another."""
        name = name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(name)
        if signature is None:
            raise NotFound(f'Serving signature key "{name}" not found.')
        if method and signature.method_name != method:
            kind = method.rsplit("/", 1)[-1]
            raise InvalidInput(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
        return signature

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature's function ("": the default one) directly (no batching)."""
        outputs = self.functions[signature or DEFAULT_SIGNATURE](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    def stop(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.stop()


def read_signature_defs(path: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs stored in saved_model.pb: what TF Serving's GetModelMetadata returns."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    return dict(saved.meta_graphs[0].signature_def)


def load_servable(name: str, version: int, path: Path, batching: BatchingConfig | None) -> Servable:
    loaded = tf.saved_model.load(str(path))
    functions = dict(loaded.signatures)
    servable = Servable(name, version, path, read_signature_defs(path), functions, loaded)
    warmed = replay_warmup(servable)
    if warmed:
        log.info("warmed_up", model=name, version=version, requests=warmed)
    if batching is not None:
        for signature in functions:
            servable.schedulers[signature] = BatchScheduler(
                lambda inputs, s=signature: servable.run(s, inputs), batching, name=f"{name}:{version}"
            )
    return servable


def versions_on_disk(base_path: Path) -> list[int]:
    if not base_path.is_dir():
        return []
    return sorted(int(p.name) for p in base_path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists())


def wanted_versions(config: ModelConfig, on_disk: list[int]) -> set[int]:
    if config.policy == "all":
        return set(on_disk)
    if config.policy == "specific":
        return set(on_disk) & set(config.versions)
    return set(on_disk[-config.num_versions :])


@dataclass
class _Model:
    config: ModelConfig
    servables: dict[int, Servable] = field(default_factory=dict)
    states: dict[int, tuple[int, str]] = field(default_factory=dict)  # version -> (State, error message)


class ModelRegistry:
    """The models and their versions, kept to what the policies want by a poller.

    ``config_file``: models.config, read again whenever it changes (as TensorFlow Serving does with
    --model_config_file_poll_wait_seconds), so that a version policy is one edit: `specific {
    versions: 1 }` rolls back to version 1 without a restart, `latest` moves forward again. A
    model taken out of the file keeps serving until a restart.
    """

    def __init__(self, models: list[ModelConfig], batching: BatchingConfig | None, poll_seconds: float = 1.0,
                 config_file: Path | None = None) -> None:  # fmt: skip
        self._models = {m.name: _Model(m) for m in models}
        self._config_file = config_file
        self._config_stamp = self._stamp()
        self._batching = batching
        self._poll_seconds = poll_seconds
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        """Load what the policies want now, then keep polling in the background."""
        self.sync()
        self._poller = threading.Thread(target=self._poll, name="version-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller:
            self._poller.join()
        with self._lock:
            for model in self._models.values():
                for servable in model.servables.values():
                    servable.stop()

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.sync()
            except Exception:  # a bad folder or config must not stop the poller; the next round tries again
                log.exception("version_poll_failed")

    def _stamp(self) -> int | None:
        return self._config_file.stat().st_mtime_ns if self._config_file else None

    def _reload_config(self) -> None:
        stamp = self._stamp()
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp  # a file that does not parse is tried again at its next change
        models = load_model_config(self._config_file)
        with self._lock:
            for config in models:
                if config.name in self._models:
                    self._models[config.name].config = config
                else:
                    self._models[config.name] = _Model(config)
        log.info("config_reloaded", path=str(self._config_file),
                 policies={m.name: m.policy for m in models})  # fmt: skip

    def sync(self) -> None:
        self._reload_config()
        for model in list(self._models.values()):
            on_disk = versions_on_disk(model.config.base_path)
            if not on_disk:
                log.warning("no_versions", model=model.config.name, base_path=str(model.config.base_path))
            wanted = wanted_versions(model.config, on_disk)
            for version in sorted(wanted - set(model.servables)):
                state, error = model.states.get(version, (0, ""))
                if state == State.END and error:
                    continue  # failed to load before; a new version number is needed
                self._load(model, version)
            # As TF Serving's availability-preserving policy: an old version goes only once a wanted one is
            # serving, so a new version that fails to load (or to warm up) leaves the old one in service.
            if wanted & set(model.servables):
                for version in sorted(set(model.servables) - wanted):
                    self._unload(model, version)
            available = sorted(model.servables)
            metrics.VERSIONS.labels(model.config.name).set(len(available))
            metrics.LATEST_VERSION.labels(model.config.name).set(available[-1] if available else 0)

    def _load(self, model: _Model, version: int) -> None:
        name = model.config.name
        path = model.config.base_path / str(version)
        with self._lock:
            model.states[version] = (State.LOADING, "")
        log.info("loading", model=name, version=version, path=str(path))
        try:
            servable = load_servable(name, version, path, self._batching)
        except Exception as e:
            log.exception("load_failed", model=name, version=version)
            with self._lock:
                model.states[version] = (State.END, f"failed to load: {e}")
            return
        with self._lock:
            model.servables[version] = servable
            model.states[version] = (State.AVAILABLE, "")
        log.info("available", model=name, version=version)

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            servable = model.servables.pop(version)
            model.states[version] = (State.UNLOADING, "")
        servable.stop()
        with self._lock:
            model.states[version] = (State.END, "")
        log.info("unloaded", model=model.config.name, version=version)

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names; the latest available version when none is given."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"Servable not found for request: Latest({name})")
            if label:
                if label not in model.config.labels:
                    raise NotFound(f"Unrecognized servable version label: {label}")
                version = model.config.labels[label]
            if version is None:
                if not model.servables:
                    raise NotFound(f"Servable not found for request: Latest({name})")
                return model.servables[max(model.servables)]
            if version not in model.servables:
                raise NotFound(f"Servable not found for request: Specific({name}, {version})")
            return model.servables[version]

    def status(self, name: str, version: int | None = None) -> list[tuple[int, int, str]]:
        """(version, state, error) for the model's versions, as GetModelStatus reports them."""
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.states:
                raise NotFound(f"Could not find any versions of model {name}")
            if version is not None:
                if version not in model.states:
                    raise NotFound(f"Could not find version {version} of model {name}")
                return [(version, *model.states[version])]
            return [(v, *model.states[v]) for v in sorted(model.states, reverse=True)]

    def ready(self) -> bool:
        """Every model has at least one AVAILABLE version."""
        with self._lock:
            return all(m.servables for m in self._models.values())
