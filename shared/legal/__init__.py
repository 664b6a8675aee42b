"""The deployment's license (a signed document) and the operator's legal documents."""
