"""The bottom room: errors and exit codes, YAML/config loading, hashing, progress.

Every other room may import from here; nothing here imports from the rest of faceaudit.
"""
