"""QCOS gateway application package (Azure Functions' convention for shared code)."""
