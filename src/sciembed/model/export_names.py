"""File names and versions of export folders: importable without torch (the exported backends read them)."""

ONNX_CONFIG = "sciembed-onnx.json"
OPENVINO_CONFIG = "sciembed-openvino.json"
ONNX_FORMAT_VERSION = 1
BASE_GRAPH = "base"  # the graph name of a model without adapters
