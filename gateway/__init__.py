"""The aiohttp REST and WebSocket gateway.

``app`` is the factory and lifecycle only; ``refs`` holds the typed keys of what the application holds. Each
feature module owns its handlers and registers its routes with ``add_routes(app)``: ``jobs``, ``transcripts``,
``files``, ``models``, ``replays``, ``speakers``, ``search``, ``usage``, ``privacy``, ``webhooks``, ``live`` and
``twilio``, ``openai_compat``, ``observability``, ``openapi``, ``webapp``, and ``auth.routes``. Shared pieces
beneath them: ``intake`` (an upload or a stored file becomes a queued job), ``options`` (job options, tags,
priority), ``params`` (query parameters, cursors), ``uploads`` and ``probe`` (receiving recordings), ``access``
(tenant isolation), ``validation`` (every request checked against the OpenAPI document), ``auth``
(authentication, the routes' declared access in ``auth.permissions``, login throttling, accounts, the audit
helper), ``problems`` (RFC 9457 errors).
SQL lives in ``repositories``; handlers reach it through the repositories in ``refs``.
"""
