"""The job contract: which operations exist, their typed parameters, and how to read them.

Each operation is a pydantic model (``image.py``, ``video.py``) whose ``op`` discriminates the
:data:`Operation` union; ``job.py`` reads a job in the list form or the seed's object form into a
:class:`JobSpec` and publishes the models' JSON Schema for /openapi.json. Errors keep one shape:
:class:`Problem` (operation, index, field, received, allowed) inside :class:`ContractError`.
``media.py`` is the one list of accepted media formats: the API's MIME types, the worker's readers.
"""

from runtime.shared.contract.fields import FieldError, JobType, OperationModel
from runtime.shared.contract.image import (
    FORMAT_ALIASES,
    IMAGE_FORMATS,
    MAX_DIMENSION,
    POSITIONS,
    ConvertFormat,
    ForceResize,
    ImageModel,
    ImageOperation,
    Resize,
    Rotate,
    Thumbnail,
    Watermark,
)
from runtime.shared.contract.job import (
    IMAGE_MODELS,
    MAX_OPERATIONS,
    REGISTRY,
    VIDEO_MODELS,
    JobSpec,
    Operation,
    lookup,
    operation_schema,
    operations_schema,
    parse_job,
)
from runtime.shared.contract.media import FORMATS as MEDIA_FORMATS
from runtime.shared.contract.media import MIME_ALIASES, MIME_TYPES, MediaFormat, sniff
from runtime.shared.contract.problems import ContractError, Problem
from runtime.shared.contract.video import (
    DEFAULT_LADDER,
    SEGMENT_TYPES,
    VIDEO_HEIGHTS,
    Poster,
    Transcode,
    TranscodeResolution,
    VideoModel,
    VideoOperation,
)

__all__ = [
    "DEFAULT_LADDER",
    "FORMAT_ALIASES",
    "IMAGE_FORMATS",
    "IMAGE_MODELS",
    "MAX_DIMENSION",
    "MAX_OPERATIONS",
    "MEDIA_FORMATS",
    "MIME_ALIASES",
    "MIME_TYPES",
    "POSITIONS",
    "REGISTRY",
    "SEGMENT_TYPES",
    "VIDEO_HEIGHTS",
    "VIDEO_MODELS",
    "ContractError",
    "ConvertFormat",
    "FieldError",
    "ForceResize",
    "ImageModel",
    "ImageOperation",
    "JobSpec",
    "JobType",
    "MediaFormat",
    "Operation",
    "OperationModel",
    "Poster",
    "Problem",
    "Resize",
    "Rotate",
    "Thumbnail",
    "Transcode",
    "TranscodeResolution",
    "VideoModel",
    "VideoOperation",
    "Watermark",
    "lookup",
    "operation_schema",
    "operations_schema",
    "parse_job",
    "sniff",
]
