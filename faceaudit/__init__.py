"""faceaudit: experimental bias audits of face-recognition models with synthetic faces.

The pipeline is protocol -> generate -> embed -> pair+score -> analyze -> report (-> gate).
See ``faceaudit.api`` for the Python entry points and ``docs/`` for the method.
"""

__version__ = "0.1.0"
