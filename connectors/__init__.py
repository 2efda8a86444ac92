"""Ways in and out of the pipeline: file and object-store ingest, storage backends."""
