"""Typed keys of what the gateway application holds."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from connectors.storage.base import ObjectStore
from foundation.settings import Settings
from gateway.publisher import Publisher
from processors.asr.models import ModelRegistry
from repositories.jobs import Repository

SETTINGS = web.AppKey("settings", Settings)
REPO = web.AppKey("repo", Repository)
PUBLISHER = web.AppKey("publisher", Publisher)
STORE = web.AppKey("store", ObjectStore)
MODELS = web.AppKey("models", ModelRegistry)
HTTP = web.AppKey("http", aiohttp.ClientSession)
