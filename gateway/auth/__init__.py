"""Identity and access: who is calling (JWT access tokens, API keys) and what they may do."""
