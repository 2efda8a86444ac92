"""Post-processing: split recognised windows into readable segments, give words their speakers, redact personal
data, render transcripts (JSON, SRT, WebVTT, text) and compare two of them."""
