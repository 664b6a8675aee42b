"""Live updates of jobs and backends to WebSocket clients, through Azure Web PubSub
(`service.Stream`; the frames in `messages`, the sending in `publisher`)."""
