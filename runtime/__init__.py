"""On-device side of edgefer: metadata contract, preprocessing, backends, daemon.

Everything under this package must import without torch, because it is what gets
installed on a Raspberry Pi or a Jetson.
"""
