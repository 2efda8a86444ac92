"""Speech recognition with faster-whisper (CTranslate2)."""
