"""Jobs: model, repository, queue messages, estimates and the service that moves them."""
