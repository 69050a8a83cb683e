"""From a file (or bytes, or a ModelProto) to a validated model ready to be planned."""

from onnxpy.model.loader import LoadedModel, load_model
from onnxpy.model.tensors import tensor_to_array

__all__ = ["LoadedModel", "load_model", "tensor_to_array"]
