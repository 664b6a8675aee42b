"""funchost: a stand-in for the Azure Functions host that runs Python v2 apps locally."""

__version__ = "0.1.0"
