"""pubsubhost: a local stand-in for Azure Web PubSub, driven by the real SDKs."""

__version__ = "0.1.0"
