"""Typed keys of what the gateway application holds. ``gateway.app`` sets them (the database's repositories,
the publisher, the HTTP session, the results feed and the object store in its lifecycle contexts); handlers
read them as ``request.app[KEY]``."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from connectors.storage.base import ObjectStore
from foundation.settings import Settings
from gateway.publisher import Publisher
from gateway.results import ResultsFeed
from processors.asr.models import ModelRegistry
from repositories.analytics import AnalyticsStore
from repositories.audit import AuditLog
from repositories.db import Database
from repositories.edits import EditStore
from repositories.erasure import ErasureStore
from repositories.files import FileStore
from repositories.identity import IdentityStore
from repositories.jobs import JobStore
from repositories.recordings import RecordingStore
from repositories.search import TranscriptSearch
from repositories.speaker_profiles import SpeakerProfiles
from repositories.usage import UsageReport
from repositories.webhooks import WebhookStore

SETTINGS = web.AppKey("settings", Settings)
MODELS = web.AppKey("models", ModelRegistry)
STORE = web.AppKey("store", ObjectStore)
PUBLISHER = web.AppKey("publisher", Publisher)
HTTP = web.AppKey("http", aiohttp.ClientSession)
RESULTS = web.AppKey("results", ResultsFeed)

# the repositories, one per aggregate, sharing one pool
DATABASE = web.AppKey("database", Database)
JOBS = web.AppKey("jobs", JobStore)
FILES = web.AppKey("files", FileStore)
IDENTITY = web.AppKey("identity", IdentityStore)
AUDIT = web.AppKey("audit", AuditLog)
WEBHOOKS = web.AppKey("webhooks", WebhookStore)
SEARCH = web.AppKey("search", TranscriptSearch)
USAGE = web.AppKey("usage", UsageReport)
PROFILES = web.AppKey("speaker_profiles", SpeakerProfiles)
ERASURE = web.AppKey("erasure", ErasureStore)
EDITS = web.AppKey("edits", EditStore)
RECORDINGS = web.AppKey("recordings", RecordingStore)
ANALYTICS = web.AppKey("analytics", AnalyticsStore)
