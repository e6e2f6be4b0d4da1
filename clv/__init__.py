"""Customer lifetime value platform.

Importing ``clv`` is cheap: heavy libraries (TensorFlow, Evidently, MLflow) are imported lazily by
the modules that need them, and nothing runs at import time.
"""

__version__ = "0.1.0"
