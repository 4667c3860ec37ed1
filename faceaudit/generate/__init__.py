"""Face generation: the Generator interface, the DCGAN default, attribute directions, the design.

- :mod:`faceaudit.generate.base`: ``Generator``, ``Edit``, ``RenderResult``
- :mod:`faceaudit.generate.dcgan`: the offline default (64x64 DCGAN)
- :mod:`faceaudit.generate.diffusion`: optional diffusers backend
- :mod:`faceaudit.generate.directions`: ``fit_directions``, ``learn_directions``, ``Directions``
- :mod:`faceaudit.generate.editing`: skin-level search and latent edits
- :mod:`faceaudit.generate.design`: ``generate_faces`` (the generate stage)
- :mod:`faceaudit.generate.manipulation`: ``manipulation_check``
"""
