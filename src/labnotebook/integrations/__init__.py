"""Adapters that log a framework's training to labnotebook.

Each module imports its framework when it is imported, so ``import labnotebook``
never does:

- :mod:`labnotebook.integrations.lightning`: ``LabnotebookLogger`` for PyTorch
  Lightning's ``Trainer(logger=...)``;
- :mod:`labnotebook.integrations.keras`: ``LabnotebookCallback`` for Keras 3's
  ``model.fit(callbacks=[...])``;
- :mod:`labnotebook.integrations.transformers`: ``LabnotebookCallback`` for the
  Hugging Face ``Trainer(callbacks=[...])``.

See docs/integrations.md.
"""
