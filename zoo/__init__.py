"""Data package of the model zoo: ``manifest.toml``, shipped checkpoints and their training configs.

It holds no code; ``imgtrans.zoo`` reads it through ``importlib.resources`` so the manifest is
found the same way in editable and wheel installs.
"""
