"""Face-recognition models under test. See ``registry`` for names and plugins."""

from faceaudit.models.base import STATUS_FTE, STATUS_OK, FaceRecognizer

__all__ = ["FaceRecognizer", "STATUS_OK", "STATUS_FTE"]
