"""Read a whole-model Keras 2 ``.h5`` file (``model.save('x.h5')``) with h5py alone: its layer graph
(the ``model_config`` JSON) and its weights, as numpy arrays in Keras' own layouts. No TensorFlow or
Keras is imported; nothing in the file is executed (a ``Lambda`` layer's pickled Python code is
left alone: callers read its ``arguments`` and rebuild the arithmetic themselves).

Layouts (Keras ``channels_last``): ``Conv2D`` kernel ``[kh, kw, in, out]`` (HWIO), ``Dense`` kernel
``[in, out]``, ``BatchNormalization`` ``gamma``/``beta``/``moving_mean``/``moving_variance`` (a layer
built with ``scale=False`` stores no ``gamma``; ``center=False`` no ``beta``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.core.errors import ModelUnavailable


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the saved graph: its Keras class, its ``config`` and the names of the layers
    feeding it (first call only; these models call every layer once)."""

    name: str
    class_name: str
    config: dict[str, Any]
    inbound: tuple[str, ...]


@dataclass
class KerasH5:
    """A Keras ``.h5`` model file read into memory.

    Attributes
    ----------
    layers : dict
        Layer name -> :class:`KerasLayer`, in the file's order.
    weights : dict
        Layer name -> {parameter name (``kernel``, ``bias``, ``beta``, ...) -> float32 array}; layers
        without weights are absent.
    keras_version, backend : str
        What the file says saved it.
    """

    layers: dict[str, KerasLayer]
    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    keras_version: str = ""
    backend: str = ""

    def of_class(self, class_name: str) -> list[KerasLayer]:
        """The layers of one Keras class, in the file's order."""
        return [layer for layer in self.layers.values() if layer.class_name == class_name]

    def consumers(self, name: str) -> list[KerasLayer]:
        """The layers that take ``name``'s output as an input."""
        return [layer for layer in self.layers.values() if name in layer.inbound]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: str | os.PathLike, what: str = "model") -> KerasH5:
    """Read the graph and weights of a Keras 2 whole-model ``.h5`` file.

    Parameters
    ----------
    path : path-like
        The ``.h5`` file.
    what : str
        How error messages name the model (they are one line and name the file).

    Returns
    -------
    KerasH5

    Raises
    ------
    ModelUnavailable
        When the file cannot be read as a Keras model file.

    Examples
    --------
    >>> import h5py, json, numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.h5")
    >>> config = {"class_name": "Functional", "config": {"layers": [
    ...     {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2},
    ...      "inbound_nodes": [[["in", 0, 0, {}]]]}]}}
    >>> with h5py.File(path, "w") as f:
    ...     f.attrs["model_config"] = json.dumps(config)
    ...     _ = f.create_dataset("model_weights/d/d/kernel:0", data=np.ones((3, 2), np.float32))
    ...     f["model_weights"].attrs["layer_names"] = [b"d"]
    ...     f["model_weights/d"].attrs["weight_names"] = [b"d/kernel:0"]
    >>> model = read_keras_h5(path)
    >>> model.layers["d"].inbound, model.weights["d"]["kernel"].shape
    (('in',), (3, 2))
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                raise ModelUnavailable(f"{what}: {path} is not a whole-model Keras .h5 file (no model_config)")
            config = json.loads(_text(f.attrs["model_config"]))
            layers: dict[str, KerasLayer] = {}
            for entry in config["config"]["layers"]:
                nodes = entry.get("inbound_nodes") or []
                inbound = tuple(node[0] for node in nodes[0]) if nodes else ()
                layers[entry["name"]] = KerasLayer(entry["name"], entry["class_name"], entry["config"], inbound)
            group = f["model_weights"] if "model_weights" in f else f
            weights: dict[str, dict[str, np.ndarray]] = {}
            for layer_name in (_text(n) for n in group.attrs["layer_names"]):
                params = {}
                for weight_name in (_text(n) for n in group[layer_name].attrs["weight_names"]):
                    # 'Conv2d_1a_3x3/kernel:0' -> 'kernel'
                    key = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
                    params[key] = np.asarray(group[layer_name][weight_name], dtype=np.float32)
                if params:
                    weights[layer_name] = params
            return KerasH5(layers, weights, _text(f.attrs.get("keras_version", "")), _text(f.attrs.get("backend", "")))
    except ModelUnavailable:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        # h5py's messages for a truncated or foreign file span several lines
        first = (str(err).strip().splitlines() or [""])[0]
        raise ModelUnavailable(f"{what}: cannot read {path} as a Keras .h5 model: {type(err).__name__}: {first}") from None
