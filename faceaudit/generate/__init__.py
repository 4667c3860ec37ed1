"""Face generation: generator backends behind one interface, and the steps they share.

Shared (this folder):

- :mod:`faceaudit.generate.base`: ``Generator``, ``Edit``, ``RenderResult`` (the render contract)
- :mod:`faceaudit.generate.backend`: ``GeneratorBackend`` (what the pipeline and the report ask of a backend)
- :mod:`faceaudit.generate.registry`: ``backend_for(protocol)``, ``get_backend(name)``, ``list_generators()``
- :mod:`faceaudit.generate.chunks`: the resumable, executor-aware chunk driver of every generate stage
- :mod:`faceaudit.generate.photometric`: pixel edits (exposure) applied to any backend's images
- :mod:`faceaudit.generate.faces`: face ids, PNG encoding, the faces table's shared columns
- :mod:`faceaudit.generate.imported`: the "no generator" backend of imported datasets

Backends, one folder each:

- :mod:`faceaudit.generate.dcgan`: the offline default (64x64 DCGAN): ``generator``, ``directions``
  (file format), ``fitting``, ``editing`` (skin search), ``gender_search``, ``recolor``, ``design``
  (its generate stage), ``backend``
- :mod:`faceaudit.generate.diffusion`: the optional diffusers backend: ``generator``, ``prompts``,
  ``identity_sharing``, ``identity_adapter``, ``weights``, ``design``, ``backend``
"""
