"""Telephony media streams (Twilio Media Streams) into pipeline audio."""
