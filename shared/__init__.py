"""QCOS gateway: the application package (Azure Functions convention for shared code)."""

__version__ = "0.2.0"
