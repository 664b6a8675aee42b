"""Signed webhooks: subscriptions to a user's job events, delivered from a queue, signed
`X-QCOS-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`."""
