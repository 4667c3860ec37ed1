"""The DCGAN backend (faceaudit.generate.backend): 64x64 faces moved along learned latent directions.

Import the parts from their modules (``faceaudit.generate.dcgan.generator.DCGANGenerator``, ...);
this package imports nothing itself, so asking for the backend loads no torch.
"""
