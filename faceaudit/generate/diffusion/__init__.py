"""The diffusion backend (faceaudit.generate.backend): a diffusers text-to-image model with prompt slots.

Import the parts from their modules (``faceaudit.generate.diffusion.generator.DiffusionGenerator``,
...); this package imports nothing itself, so asking for the backend loads no diffusers.
"""
