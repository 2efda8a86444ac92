"""Outbound webhooks: signed, retried notifications of job events to per-organization subscribers.

Framework-free parts, usable by receivers too: ``signing`` (HMAC-SHA256 signatures and their verification),
``backoff`` (the retry schedule), ``targets`` (which URLs a subscription may name), ``events`` (pipeline events
-> webhook events with deterministic ids and text-free payloads), ``sealing`` (the shared secrets, encrypted at
rest). ``dispatch`` (the aiohttp delivery loop, over ``repositories.webhooks``) runs in the webhooks stage. The
contract for receivers is in docs/webhooks.md.
"""
