"""Conversation analytics, framework-free: the shape of a call from who spoke when (``conversation``, on the
millisecond ``timeline``), phrase hits with fuzzy matching (``phrases``), sentiment (``sentiment``), the record
of one call (``call.analyze``) and the aggregates calls add up to, replay-aware (``aggregate``)."""
