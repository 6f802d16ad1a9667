"""Framework-agnostic machine-learning core of MedPortal's AI second opinions.

Nothing here imports Django, and only ``architectures``, ``augment``, ``training`` and
``serving`` touch TensorFlow/Keras (lazily), so the web process can import the
preprocessing, metrics and model-card helpers without paying for TensorFlow.
"""
