"""Artifact file suffix -> format name: one table for the bench's rows and its peers."""
FORMAT_OF = {".pt": "pytorch", ".onnx": "onnx", ".tflite": "tflite", ".engine": "tensorrt", ".plan": "tensorrt"}
